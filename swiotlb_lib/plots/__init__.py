"""Matplotlib figures drawn from model snapshots (no widget code here).

One module per chapter topic; :mod:`swiotlb_lib.plots.common` holds the shared look,
the colour of each thing the book draws, and the PNG/alt-text helpers that let a figure
live inside a precomputed widget state on the static site.
"""
