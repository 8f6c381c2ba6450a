"""One chapter run live: JupyterLab on 127.0.0.1, driven by headless Chromium like a reader.

The test starts ``jupyter lab`` (from the same environment as pytest) on a free loopback port
with a token, opens a copy of book/intro.ipynb, runs all cells from the Run menu, moves the
"kernel-only" slider with the keyboard and checks that the kernel-side ``observe`` callback
redrew the text under it. On the static site the same slider moves but the text stays
(test_rendered_book.py checks that), so the change seen here came from the kernel.

Skipped when chromium is missing, except under CI=true (then it fails).
"""
import pytest

from . import cdp

NOTEBOOK = cdp.ROOT / "book" / "intro.ipynb"

# The output of the kernel-only cell: a VBox with this label, a slider and an HTML text.
LIVE_BOX = """[...document.querySelectorAll('.jp-OutputArea .widget-vbox')]
    .find(v => v.innerText.includes('needs a live Python session'))"""
LIVE_TEXT = f"(() => {{ const v = {LIVE_BOX}; " \
            "return v ? v.querySelector('.widget-html').innerText.trim() : null; })()"


@pytest.fixture
def chromium():
    return cdp.require_chromium()


def test_kernel_callback_redraws_output_in_jupyterlab(chromium, tmp_path):
    with cdp.jupyter_lab([NOTEBOOK], tmp_path) as lab, cdp.Chromium(chromium) as browser:
        page = browser.new_page()
        try:
            cdp.lab_open_notebook(page, lab, NOTEBOOK.name)
            cdp.lab_run_all_cells(page)

            # The widget state is not committed, so the widgets only appear once the kernel
            # has run the cells.
            page.wait_for(f"{cdp.LAB_ACCEPT_DIALOG} && "
                          f"{LIVE_TEXT} === 'live session only: 1 slot = 2 KiB'", timeout=120)

            page.evaluate(f"{LIVE_BOX}.querySelector('.noUi-handle').id = 'bounce-live-handle'")
            page.focus("#bounce-live-handle")
            page.press_key("ArrowRight")
            page.wait_for(f"{LIVE_TEXT} === 'live session only: 2 slots = 4 KiB'", timeout=30)
            page.press_key("ArrowRight")
            page.wait_for(f"{LIVE_TEXT} === 'live session only: 3 slots = 6 KiB'", timeout=30)

            assert cdp.external_requests(page.requested_urls()) == []
        except Exception:
            page.screenshot(tmp_path / "jupyterlab-failure.png")
            print(f"screenshot: {tmp_path / 'jupyterlab-failure.png'}, "
                  f"server log: {tmp_path / 'jupyter.log'}")
            raise
