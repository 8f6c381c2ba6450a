"""``python -m swiotlb_lib``: see :mod:`swiotlb_lib.cli`."""
import sys

from .cli import main

sys.exit(main())
