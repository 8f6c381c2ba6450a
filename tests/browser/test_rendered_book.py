"""The built book (README command 1) in headless Chromium, served from 127.0.0.1.

For every page under _build/html/book/:
  (a) the page renders: it has a title and real text in its main article;
  (b) every embedded widget renders (vendored html-manager, no kernel), and math renders;
  (c) no request leaves this machine: every URL the page asks for is 127.0.0.1, data: or blob:;
  no uncaught JavaScript exception.
And on the preface: (d) moving the precomputed (jslinked) slider changes what is shown.

Skipped when chromium or the build is missing, except under CI=true (then it fails).
"""
import json
import re

import pytest

from . import cdp

BOOK_PAGES = sorted(
    p.relative_to(cdp.BUILD_HTML).as_posix()
    for p in (cdp.BUILD_HTML / "book").rglob("*.html")
    if p.name not in ("genindex.html", "search.html")
) if (cdp.BUILD_HTML / "book").is_dir() else []

WIDGET_VIEW = 'type="application/vnd.jupyter.widget-view+json"'
RENDERED_WIDGETS = "document.querySelectorAll('.widget-subarea > .jupyter-widgets').length"


@pytest.fixture(scope="module")
def site():
    """(base URL of the built book on 127.0.0.1, a running headless Chromium)."""
    chromium = cdp.require_chromium()
    build = cdp.require_build()
    with cdp.serve_directory(build) as base, cdp.Chromium(chromium) as browser:
        yield base, browser


def open_page(site, path):
    base, browser = site
    page = browser.new_page()
    page.goto(f"{base}/{path}")
    html = (cdp.BUILD_HTML / path).read_text(encoding="utf-8")
    views = html.count(WIDGET_VIEW)
    if views:
        page.wait_for(f"{RENDERED_WIDGETS} >= {views}", timeout=30)
    if 'class="math' in html:
        page.wait_for("document.querySelector('mjx-container') !== null", timeout=30)
    page.settle()  # let late requests (fonts, images) show up
    return page, views


@pytest.mark.parametrize("path", BOOK_PAGES or [None])
def test_page_renders_offline(site, path):
    if path is None:
        cdp.skip_or_fail("no pages in _build/html/book/: run README command 1 "
                         "(bash scripts/setup_and_build.sh)")
    page, views = open_page(site, path)
    try:
        # (a) a title and a real body
        title = page.evaluate("(document.querySelector('article h1') || {}).innerText || ''")
        text = page.evaluate("(document.querySelector('article.bd-article') || {})"
                             ".innerText || ''")
        assert title.strip(), f"{path}: no <h1> in the article"
        assert len(text.strip()) > 100, f"{path}: the article is (nearly) empty: {text!r}"

        # (b) every widget view became a rendered widget
        if views:
            rendered = page.evaluate(RENDERED_WIDGETS)
            sliders = page.evaluate("document.querySelectorAll('.widget-slider').length")
            assert rendered >= views, f"{path}: {rendered} of {views} widgets rendered"
            if "IntSlider" in (cdp.BUILD_HTML / path).read_text(encoding="utf-8"):
                assert sliders > 0, f"{path}: the page has IntSlider state but no slider shows"

        # (c) nothing leaves the machine, and the page's scripts did not crash
        external = cdp.external_requests(page.requested_urls())
        assert external == [], f"{path} asked for URLs outside 127.0.0.1: {external}"
        assert page.exceptions() == [], f"{path}: JavaScript exceptions {page.exceptions()}"
    finally:
        page.close()


# Text of the Stack that is jslinked to the first slider on the page (the box after it).
STACK_TEXT = """(() => {
    const slider = document.querySelector('.widget-slider');
    const box = slider && slider.nextElementSibling;
    return box ? box.innerText.trim() : null;
})()"""
READOUT = "document.querySelector('.widget-slider .widget-readout').innerText.trim()"


def test_static_slider_switches_precomputed_view(site):
    """(d) On the preface, ArrowRight on the first slider shows the next precomputed fact."""
    path = "book/intro.html"
    if path not in BOOK_PAGES:
        pytest.fail(f"{path} was not built")
    page, _ = open_page(site, path)
    try:
        assert page.evaluate(READOUT) == "0"
        before = page.evaluate(STACK_TEXT)
        assert before == "slot size 2 KiB"

        page.focus(".widget-slider .noUi-handle")
        page.press_key("ArrowRight")
        page.wait_for(f"{READOUT} === '1'", timeout=10)
        after = page.wait_for(f"(() => {{ const t = {STACK_TEXT}; "
                              f"return t !== {json.dumps(before)} && t; }})()", timeout=10)
        assert after == "segment 128 slots"

        page.press_key("ArrowRight")
        page.wait_for(f"{STACK_TEXT} === 'default pool 32768 slots'", timeout=10)
        assert cdp.external_requests(page.requested_urls()) == []
    finally:
        page.close()


def test_kernel_only_slider_moves_but_does_not_redraw(site):
    """The counterpart of test_live_jupyter.py: without a kernel, the observe callback does
    not run, so the text under the kernel-only slider stays as the build left it."""
    page, _ = open_page(site, "book/intro.html")
    try:
        box = """[...document.querySelectorAll('.widget-vbox')]
            .find(v => v.innerText.includes('needs a live Python session'))"""
        text = f"{box}.querySelector('.widget-html').innerText.trim()"
        readout = f"{box}.querySelector('.widget-readout').innerText.trim()"
        assert page.evaluate(text) == "live session only: 1 slot = 2 KiB"
        page.evaluate(f"{box}.querySelector('.noUi-handle').id = 'bounce-kernel-handle'")
        page.focus("#bounce-kernel-handle")
        page.press_key("ArrowRight")
        page.wait_for(f"{readout} === '2'", timeout=10)
        page.pump(1.0)
        assert page.evaluate(text) == "live session only: 1 slot = 2 KiB"
    finally:
        page.close()


# The chapters the table of contents lists (book/chNN_*), as built pages.
CHAPTERS = [f"{m}.html" for m in re.findall(r"file:\s*(book/ch\w+)", (cdp.ROOT / "_toc.yml").read_text())]

# What the first precomputed widget of a page shows: the HTML of the visible child of its
# Stack (the box's second child; swiotlb_lib.widgets.common.precomputed builds the box).
VISIBLE_STATE = """(() => {
    const box = document.querySelector('.bounce-precomputed');
    if (!box || box.children.length < 2) return null;
    const kids = [...box.children[1].querySelectorAll(':scope > *')];
    const shown = kids.filter(k => k.offsetParent !== null);
    return shown.map(k => k.innerHTML).join('|');
})()"""

MOVE_CONTROL = """(() => {
    const box = document.querySelector('.bounce-precomputed');
    const ctl = box.children[0];
    const sel = ctl.querySelector('select');
    if (sel) { sel.selectedIndex = (sel.selectedIndex + 1) % sel.options.length;
               sel.dispatchEvent(new Event('change', {bubbles: true})); return 'select'; }
    const buttons = [...ctl.querySelectorAll('button')];
    if (buttons.length > 1) { const i = buttons.findIndex(b => b.classList.contains('mod-active'));
               buttons[(i + 1) % buttons.length].click(); return 'toggle'; }
    const handle = ctl.querySelector('.noUi-handle');
    if (handle) { handle.id = 'bounce-precomputed-handle'; return 'slider'; }
    return null;
})()"""


@pytest.mark.parametrize("path", CHAPTERS)
def test_each_chapter_has_a_static_control_that_changes_the_view(site, path):
    """Every chapter's main widget works on the static page: moving its precomputed control
    (a jslinked SelectionSlider, Dropdown or ToggleButtons) shows another rendered state."""
    if path not in BOOK_PAGES:
        pytest.fail(f"{path} is in _toc.yml but was not built")
    page, views = open_page(site, path)
    try:
        assert views, f"{path}: no widget on the page"
        before = page.evaluate(VISIBLE_STATE)
        assert before, f"{path}: no precomputed (static) widget with a visible state"
        how = page.evaluate(MOVE_CONTROL)
        assert how, f"{path}: the precomputed widget has no control the test can move"
        if how == "slider":
            page.focus("#bounce-precomputed-handle")
            page.press_key("ArrowRight")
        after = page.wait_for(f"(() => {{ const t = {VISIBLE_STATE}; "
                              f"return t && t !== {json.dumps(before)} && t; }})()", timeout=10)
        assert after and after != before
        assert cdp.external_requests(page.requested_urls()) == []
    finally:
        page.close()


# Chapter 7's main control: the slider of the first precomputed box on the page (the "where
# does a vc4 bounce buffer come from" widget, swiotlb_lib.widgets.patch3.where_widget).
CH07_READOUT = ("document.querySelector('.bounce-precomputed .widget-slider .widget-readout')"
                ".innerText.trim()")


def test_chapter7_main_slider_switches_on_the_static_page(site):
    """ArrowRight on chapter 7's size slider (1 MiB at build time) shows the 4 MiB state:
    a different readout and a different rendered answer, with no kernel."""
    path = "book/ch07_patch3_dynamic.html"
    if path not in BOOK_PAGES:
        pytest.fail(f"{path} was not built")
    page, views = open_page(site, path)
    try:
        assert views, f"{path}: no widget on the page"
        assert page.evaluate(CH07_READOUT) == "1 MiB"
        before = page.evaluate(VISIBLE_STATE)
        assert before and "1 MiB buffer" in before
        page.evaluate("document.querySelector('.bounce-precomputed .noUi-handle').id = 'ch07-handle'")
        page.focus("#ch07-handle")
        page.press_key("ArrowRight")
        page.wait_for(f"{CH07_READOUT} === '4 MiB'", timeout=10)
        after = page.wait_for(f"(() => {{ const t = {VISIBLE_STATE}; "
                              f"return t && t !== {json.dumps(before)} && t; }})()", timeout=10)
        assert "4 MiB buffer" in after
        assert cdp.external_requests(page.requested_urls()) == []
    finally:
        page.close()
