"""The shared plotting helpers (swiotlb_lib.plots.common)."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from swiotlb_lib.plots.common import figure, img_html, png_bytes  # noqa: E402


def _two_axes():
    # constrained layout has work to do: a title, axis labels, a legend and two axes
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(6, 2.5), dpi=100, constrained_layout=True)
    a1.plot([1, 10, 100], [3, 1, 2], label="a long legend label")
    a1.set_xscale("log")
    a1.set_ylabel("slots in use")
    a1.legend(loc="lower center", bbox_to_anchor=(0.5, 1.02))
    a2.bar(["v6.3", "v6.6-dynamic"], [512, 2048])
    a2.set_title("pool size")
    fig.suptitle("two axes")
    return fig


def test_png_bytes_is_the_image_savefig_makes():
    # png_bytes() runs the layout engine once and saves without it; matplotlib's own
    # savefig() runs the engine in an extra draw.  Both must lay out and paint the same
    # image, byte for byte (same matplotlib, same metadata).
    ref = io.BytesIO()
    fig = _two_axes()
    fig.savefig(ref, format="png")
    plt.close(fig)
    assert png_bytes(_two_axes()) == ref.getvalue()


def test_png_bytes_closes_the_figure_unless_asked_not_to():
    fig, _ = figure(3, 2)
    png_bytes(fig)
    assert not plt.fignum_exists(fig.number)
    fig, _ = figure(3, 2)
    data = png_bytes(fig, close=False)
    assert plt.fignum_exists(fig.number) and data[:8] == b"\x89PNG\r\n\x1a\n"   # the PNG signature
    plt.close(fig)


def test_img_html_escapes_the_alt_text():
    fig, _ = figure(3, 2)
    tag = img_html(fig, 'pool "A" < pool B', width=300)
    assert tag.startswith('<img src="data:image/png;base64,')
    assert 'alt="pool &quot;A&quot; &lt; pool B"' in tag and 'width="300"' in tag
