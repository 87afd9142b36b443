"""The HTML viewer (ma.viz.*_html) in a real browser: headless Chromium driven
by Selenium through Debian's chromedriver (never a browser or driver download).

Each page is written to a file and opened as file://: the page must work
offline. The tests read what the page drew (canvas pixels, a screenshot decoded
with Pillow) and what it says (the hover read-out's text and data attributes),
and compare both with numpy: the weights to 1e-4, the colours with the colour
map anchors the page embeds (tests/viz/html_test.cpp checks those are the
library's), the mask colours with pictures.hpp's constants.
"""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import maskattn as ma

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# A quiet, reproducible browser: no GPU, no first-run pages, nothing fetched in
# the background; one CSS pixel per device pixel, so screenshots and canvas
# pixels line up with CSS coordinates.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
    "--force-device-scale-factor=1",
]

# pictures.hpp's colours.
ALLOWED = (33, 102, 172)
MASKED = (236, 236, 236)
DIAGONAL = (230, 120, 20)
HATCH = (150, 150, 150)
NAN = (255, 0, 255)

QUERY_TOKENS = "the cat sat on the mat".split()
KEY_TOKENS = "<s> a the cat sat on the mat".split()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """One headless Chromium for the module, with a fresh profile."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser tests need Debian's chromium and "
            "chromium-driver; `make test` installs them (tools/setup.sh --test)"
        )
    # The Service path below already keeps Selenium Manager out; offline in case.
    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pages")


def open_page(driver, pages: Path, name: str, html: str):
    """Write `html` to a file, load it, wait for its first frame; returns the canvas."""
    assert isinstance(html, str) and html.startswith("<!DOCTYPE html>")
    path = pages / f"{name}.html"
    path.write_text(html, encoding="utf-8")
    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "true"
    )
    settle(driver)
    return driver.find_element(By.ID, "heatmap")


def settle(driver):
    """Wait until the page has drawn what its last event asked for (two frames)."""
    driver.execute_async_script(
        "const done = arguments[0];"
        "requestAnimationFrame(() => requestAnimationFrame(() => done()));"
    )


def page_data(driver) -> dict:
    return driver.execute_script(
        "return JSON.parse(document.getElementById('data').textContent)"
    )


def cell_center(driver, i: int, j: int) -> tuple[float, float]:
    c = driver.execute_script("return window.maskattnViewer.cellCenter(...arguments)", i, j)
    assert c is not None, f"cell ({i}, {j}) is not in view"
    return c["x"], c["y"]


def cell_centers(driver, cells) -> list[tuple[float, float]]:
    """cell_center() of many cells in one round trip."""
    centers = driver.execute_script(
        "return arguments[0].map(([i, j]) => window.maskattnViewer.cellCenter(i, j))",
        [[int(i), int(j)] for i, j in cells],
    )
    assert None not in centers
    return [(c["x"], c["y"]) for c in centers]


def canvas_pixel(driver, x: float, y: float, canvas_id: str = "heatmap") -> tuple[int, int, int]:
    """The canvas pixel at CSS point (x, y) of the canvas."""
    return tuple(
        driver.execute_script(
            "const c = document.getElementById(arguments[2]);"
            "const r = window.devicePixelRatio || 1;"
            "const p = c.getContext('2d').getImageData("
            "  Math.floor(arguments[0] * r), Math.floor(arguments[1] * r), 1, 1).data;"
            "return [p[0], p[1], p[2]];",
            x,
            y,
            canvas_id,
        )
    )


def cell_pixel(driver, i: int, j: int) -> tuple[int, int, int]:
    return canvas_pixel(driver, *cell_center(driver, i, j))


def canvas_image(driver, canvas_id: str = "heatmap") -> Image.Image:
    """The whole canvas, its own pixels (toDataURL), in one round trip."""
    url = driver.execute_script(
        "return document.getElementById(arguments[0]).toDataURL('image/png')", canvas_id
    )
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


def hover(driver, canvas, i: int, j: int) -> dict:
    """Move the pointer to cell (i, j)'s centre; returns the read-out."""
    x, y = cell_center(driver, i, j)
    size = canvas.size
    # Selenium 4 offsets are from the element's centre.
    ActionChains(driver, duration=0).move_to_element_with_offset(
        canvas, round(x - size["width"] / 2), round(y - size["height"] / 2)
    ).perform()
    settle(driver)
    return driver.execute_script(
        "const r = document.getElementById('readout');"
        "return {text: r.textContent, row: r.dataset.row, col: r.dataset.col,"
        "        value: r.dataset.value, masked: r.dataset.masked, panel: r.dataset.panel};"
    )


def unhover(driver, canvas):
    """Move the pointer onto the row labels, off every cell."""
    ActionChains(driver, duration=0).move_to_element_with_offset(
        canvas, -canvas.size["width"] // 2 + 2, 0
    ).perform()
    settle(driver)


def colormap(anchors, t: float) -> tuple[int, int, int]:
    """image.hpp's color_at(): linear between evenly spaced anchors, t clamped."""
    a = np.asarray(anchors, dtype=np.float64)
    x = min(max(t, 0.0), 1.0) * (len(a) - 1)
    i = min(int(np.floor(x)), len(a) - 2)
    f = x - i
    return tuple(int(np.floor(a[i, k] + (a[i + 1, k] - a[i, k]) * f + 0.5)) for k in range(3))


def assert_color(actual, expected, tol: int = 2):
    assert all(abs(int(a) - int(e)) <= tol for a, e in zip(actual, expected)), (actual, expected)


def value_color(data: dict, v: float) -> tuple[int, int, int]:
    return colormap(data["colormap"], (float(v) - data["vmin"]) / (data["vmax"] - data["vmin"]))


# ---- the attention page ---------------------------------------------------------

ATTENTION_MASK_LENGTHS = [8, 5]


@pytest.fixture(scope="module")
def attention():
    """Two layers of weights (B, H, Lq, Lk) = (2, 3, 6, 8) under a bottom-right
    causal mask (query i sees keys j <= i + 2) and key lengths 8 and 5."""
    rng = np.random.default_rng(20261123)
    mask = ma.causal("bottom_right") & ma.key_lengths(ATTENTION_MASK_LENGTHS)
    layers = []
    for _ in range(2):
        q = rng.standard_normal((2, 3, 6, 16), dtype=np.float32) * 2
        k = rng.standard_normal((2, 3, 8, 16), dtype=np.float32) * 2
        _, w = ma.attention(q, k, k, mask, need_weights=True)
        layers.append(w)
    return layers, mask


def allowed(b: int, i: int, j: int) -> bool:
    return j <= i + 2 and j < ATTENTION_MASK_LENGTHS[b]


READOUT = re.compile(
    r'^query (\d+) "([^"]*)" · key (\d+) "([^"]*)" · '
    r"weight (-?\d+\.\d+(?:e[-+]\d+)?) · (may attend|masked)$"
)


def check_readout(r: dict, weights, b: int, h: int, i: int, j: int):
    """Text and data attributes of the read-out for cell (i, j) of weights[b, h]."""
    m = READOUT.match(r["text"])
    assert m, r["text"]
    assert (int(m[1]), m[2], int(m[3]), m[4]) == (i, QUERY_TOKENS[i], j, KEY_TOKENS[j])
    expected = float(weights[b, h, i, j])
    assert abs(float(m[5]) - expected) <= 1e-4
    assert m[6] == ("may attend" if allowed(b, i, j) else "masked")
    assert (int(r["row"]), int(r["col"])) == (i, j)
    assert abs(float(r["value"]) - expected) <= 1e-4
    assert r["masked"] == ("false" if allowed(b, i, j) else "true")


@pytest.fixture(scope="module")
def attention_html(attention):
    layers, mask = attention
    return ma.viz.attention_html(
        layers, mask, query_labels=QUERY_TOKENS, key_labels=KEY_TOKENS, title="two layers"
    )


def test_attention_page_draws_weights_and_hatches_masked_cells(
    driver, pages, attention_html, attention
):
    layers, _ = attention
    canvas = open_page(driver, pages, "attention", attention_html)
    data = page_data(driver)
    assert driver.title == "two layers"
    assert driver.find_element(By.ID, "title").text == "two layers"
    assert [s["name"] for s in data["selectors"]] == ["layer", "batch", "head"]

    # The screenshot: a picture, not a blank page.
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    assert len(shot.getcolors(1 << 20)) > 50
    # Its canvas region: cell (0, 1) of layer 0, batch 0, head 0 in its
    # colour; cell (0, 5) masked, hatched: the masked grey and the hatch lines.
    left, top = canvas.location["x"], canvas.location["y"]
    x, y = cell_center(driver, 0, 1)
    expected = value_color(data, layers[0][0, 0, 0, 1])
    assert_color(shot.getpixel((round(left + x), round(top + y))), expected)
    x, y = cell_center(driver, 0, 5)
    cell = int(float(canvas.get_attribute("data-cell")))
    assert cell >= 8
    box = shot.crop((round(left + x - cell / 2) + 1, round(top + y - cell / 2) + 1,
                     round(left + x + cell / 2) - 1, round(top + y + cell / 2) - 1))
    assert {c for _, c in box.getcolors(1 << 16)} == {MASKED, HATCH}

    # The canvas itself, every cell of the panel shown.
    image = canvas_image(driver)
    cells = [(i, j) for i in range(6) for j in range(8)]
    for (i, j), (x, y) in zip(cells, cell_centers(driver, cells)):
        if allowed(0, i, j):
            expected = value_color(data, layers[0][0, 0, i, j])
            assert_color(image.getpixel((int(x), int(y))), expected)
        else:
            assert image.getpixel((int(x), int(y))) in (MASKED, HATCH)


def test_attention_selectors_redraw_the_chosen_panel(driver, pages, attention_html, attention):
    layers, _ = attention
    canvas = open_page(driver, pages, "attention", attention_html)
    data = page_data(driver)
    # The cell whose weight differs most between heads 0 and 2: its colour must change.
    diff = np.abs(layers[0][0, 0] - layers[0][0, 2])
    i, j = (int(x) for x in np.unravel_index(np.argmax(diff), diff.shape))
    assert diff[i, j] > 0.1 * data["vmax"]
    before = cell_pixel(driver, i, j)
    assert_color(before, value_color(data, layers[0][0, 0, i, j]))

    Select(driver.find_element(By.ID, "select-head")).select_by_visible_text("2")
    settle(driver)
    assert canvas.get_attribute("data-panel") == "2"  # layer 0, batch 0, head 2
    assert driver.find_element(By.ID, "panel-title").text == "layer 0, batch 0, head 2"
    after = cell_pixel(driver, i, j)
    assert after != before
    assert_color(after, value_color(data, layers[0][0, 2, i, j]))

    Select(driver.find_element(By.ID, "select-layer")).select_by_visible_text("1")
    Select(driver.find_element(By.ID, "select-batch")).select_by_visible_text("1")
    settle(driver)
    # Panel (layer 1, batch 1, head 2): ((1 * 2) + 1) * 4 + 2, the heads and their mean.
    assert canvas.get_attribute("data-panel") == "14"
    assert_color(cell_pixel(driver, i, j), value_color(data, layers[1][1, 2, i, j]))
    assert cell_pixel(driver, 5, 6) in (MASKED, HATCH)  # batch 1 has 5 keys
    check_readout(hover(driver, canvas, 4, 1), layers[1], 1, 2, 4, 1)

    # The mean over the heads: forbidden where every head is, i.e. the mask.
    Select(driver.find_element(By.ID, "select-head")).select_by_visible_text("mean")
    settle(driver)
    mean = layers[1][1].astype(np.float64).mean(axis=0)
    assert_color(cell_pixel(driver, i, j), value_color(data, mean[i, j]))
    r = hover(driver, canvas, 2, 4)
    assert r["panel"] == "15" and r["masked"] == "false"
    assert abs(float(r["value"]) - mean[2, 4]) <= 1e-4


def test_attention_hover_reads_out_query_key_weight_and_masked(
    driver, pages, attention_html, attention
):
    layers, _ = attention
    canvas = open_page(driver, pages, "attention", attention_html)
    Select(driver.find_element(By.ID, "select-head")).select_by_visible_text("1")
    settle(driver)
    for i, j in [(3, 2), (5, 7), (0, 2), (0, 3), (4, 7)]:  # allowed, allowed, edge, masked, masked
        check_readout(hover(driver, canvas, i, j), layers[0], 0, 1, i, j)
    r = hover(driver, canvas, 0, 3)
    assert r["text"].endswith("· weight 0.0000 · masked")
    unhover(driver, canvas)  # the pointer off the cells: the read-out is cleared
    assert driver.find_element(By.ID, "readout").get_attribute("data-row") == ""


def test_zoom_buttons_change_the_cell_and_canvas_size(driver, pages, attention_html, attention):
    layers, _ = attention
    canvas = open_page(driver, pages, "attention", attention_html)
    fit = float(canvas.get_attribute("data-cell"))
    width, height = canvas.size["width"], canvas.size["height"]

    driver.find_element(By.ID, "zoom-in").click()
    settle(driver)
    assert float(canvas.get_attribute("data-cell")) > fit
    assert canvas.size["width"] > width and canvas.size["height"] > height
    check_readout(hover(driver, canvas, 5, 6), layers[0], 0, 0, 5, 6)  # cells still map right

    driver.find_element(By.ID, "zoom-out").click()
    driver.find_element(By.ID, "zoom-out").click()
    settle(driver)
    assert float(canvas.get_attribute("data-cell")) < fit
    assert canvas.size["width"] < width
    check_readout(hover(driver, canvas, 2, 1), layers[0], 0, 0, 2, 1)

    driver.find_element(By.ID, "zoom-fit").click()
    settle(driver)
    assert float(canvas.get_attribute("data-cell")) == fit
    assert (canvas.size["width"], canvas.size["height"]) == (width, height)


def test_long_sequence_scrolls_inside_the_page(driver, pages):
    """L = 2000: fits zoomed out, and zoomed in the canvas stays one viewport
    large while the matrix scrolls under it; hover still finds the cell."""
    n = 2000
    rng = np.random.default_rng(7)
    q = rng.standard_normal((1, 1, n, 16), dtype=np.float32)
    _, w = ma.attention(q, q, q, ma.causal(), need_weights=True)
    canvas = open_page(driver, pages, "long", ma.viz.attention_html(w, ma.causal()))
    assert float(canvas.get_attribute("data-cell")) < 1  # the whole matrix in view
    for _ in range(20):
        if float(canvas.get_attribute("data-cell")) >= 16:
            break
        driver.find_element(By.ID, "zoom-in").click()
    settle(driver)
    assert canvas.size["width"] <= 1280 and canvas.size["height"] <= 1000
    sizer = driver.find_element(By.ID, "sizer")
    assert sizer.size["width"] > 16 * n  # the content: far larger than the canvas
    for i, j, masked in [(1500, 700, "false"), (700, 1500, "true")]:
        driver.execute_script("window.maskattnViewer.scrollToCell(...arguments)", i, j)
        settle(driver)
        r = hover(driver, canvas, i, j)
        assert (r["row"], r["col"], r["masked"]) == (str(i), str(j), masked)
        assert abs(float(r["value"]) - float(w[0, 0, i, j])) <= 1e-4


# ---- the mask page --------------------------------------------------------------


def test_mask_page_two_colours_diagonal_and_readout(driver, pages):
    mask = ma.causal() & ma.key_lengths([8, 4])
    canvas = open_page(driver, pages, "mask", ma.viz.mask_html(mask, 2, 1, 8, 8))
    dense = mask.materialize(2, 1, 8, 8)
    data = page_data(driver)
    assert data["style"] == "mask"
    legend = driver.find_element(By.ID, "legend").text
    assert "may attend" in legend and "masked" in legend and "diagonal" in legend

    cell = float(canvas.get_attribute("data-cell"))
    assert cell >= 14  # the diagonal outline is 2 pixels wide from 14 up
    for b in range(2):
        Select(driver.find_element(By.ID, "select-batch")).select_by_index(b)
        unhover(driver, canvas)  # no hover outline over the edges checked below
        image = canvas_image(driver)
        cells = [(i, j) for i in range(8) for j in range(8)]
        for (i, j), (x, y) in zip(cells, cell_centers(driver, cells)):
            expected = ALLOWED if dense[b, 0, i, j] == 0 else MASKED
            assert image.getpixel((int(x), int(y))) == expected, (b, i, j)
            # The diagonal j == i outlined: its cells' left edge is orange.
            edge = image.getpixel((int(x - cell / 2 + 1), int(y)))
            assert (edge == DIAGONAL) == (i == j), (b, i, j, edge)
        for i, j in [(5, 2), (2, 5), (6, 5)]:
            r = hover(driver, canvas, i, j)
            ok = dense[b, 0, i, j] == 0
            assert r["text"] == f"query i {i} · key j {j} · {'may attend' if ok else 'masked'}"
            assert (r["row"], r["col"], r["masked"]) == (str(i), str(j), "false" if ok else "true")
            assert r["value"] == ("0" if ok else "-inf")


def test_mask_page_reads_out_a_bias(driver, pages):
    slopes = ma.alibi_slopes(2)
    mask = ma.causal() & ma.alibi(slopes)
    canvas = open_page(driver, pages, "alibi", ma.viz.mask_html(mask, 1, 2, 5, 5))
    dense = mask.materialize(1, 2, 5, 5)
    Select(driver.find_element(By.ID, "select-head")).select_by_index(1)  # heads differ: one each
    settle(driver)
    r = hover(driver, canvas, 4, 1)
    bias = float(dense[0, 1, 4, 1])
    assert bias < 0
    assert r["text"].startswith("query i 4 · key j 1 · may attend · mask value ")
    assert abs(float(r["text"].rsplit(" ", 1)[1]) - bias) <= 1e-4
    assert abs(float(r["value"]) - bias) <= 1e-6


# ---- the encoding page ----------------------------------------------------------


def test_encoding_page_curves_and_hover(driver, pages):
    pe = ma.sinusoidal_encoding(64, 32)
    canvas = open_page(driver, pages, "encoding", ma.viz.encoding_html(pe))
    data = page_data(driver)
    curves = driver.find_element(By.ID, "curves")
    assert curves.is_displayed() and curves.size["height"] > 100
    assert data["curves"] == [0, 4, 8, 12]
    assert driver.find_elements(By.ID, "colorbar")

    def black_pixels() -> int:
        return driver.execute_script(
            "const c = document.getElementById('curves'), d = c.getContext('2d')"
            "  .getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let k = 0; k < d.length; k += 4)"
            "  n += d[k] < 40 && d[k + 1] < 40 && d[k + 2] < 40;"
            "return n;"
        )

    before = black_pixels()
    for i, j in [(10, 3), (40, 17)]:
        r = hover(driver, canvas, i, j)
        assert r["text"].startswith(f"position {i} · dimension {j} · PE ")
        assert abs(float(r["text"].rsplit(" ", 1)[1]) - pe[i, j]) <= 1e-4
        assert abs(float(r["value"]) - pe[i, j]) <= 1e-4
        assert r["masked"] == "false"
        # The hovered column's curve joins the plot, in black.
        assert curves.get_attribute("data-column") == str(j)
        assert black_pixels() > before + 100
        assert_color(cell_pixel(driver, i, j), value_color(data, pe[i, j]))


def test_heatmap_page_shows_nan_and_infinities(driver, pages):
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    values[1, 2] = np.nan
    values[2, 3] = -np.inf
    canvas = open_page(driver, pages, "heatmap", ma.viz.heatmap_html(values))
    data = page_data(driver)
    assert cell_pixel(driver, 1, 2) == NAN
    assert_color(cell_pixel(driver, 2, 3), value_color(data, data["vmin"]))  # clamped
    assert_color(cell_pixel(driver, 0, 1), value_color(data, 1.0))
    r = hover(driver, canvas, 1, 2)
    assert r["value"] == "nan" and r["text"] == "row 1 · column 2 · value NaN"
    r = hover(driver, canvas, 2, 3)
    assert r["value"] == "-inf" and r["text"] == "row 2 · column 3 · value -inf"
