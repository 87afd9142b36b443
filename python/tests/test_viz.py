"""maskattn.viz's PNG pictures, decoded with Pillow (independently of the
libpng the library writes with) and looked at as a person would: the size,
the colour of a cell the mask forbids against one it allows, the colour bar,
and colours against matplotlib's own viridis.

Where the cells are is found in the picture itself: every panel's cells and
the colour bar are framed by a 1-pixel rectangle of the axis grey (110, 110,
110), which nothing else in a picture draws as a long line.
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

import maskattn as ma

ALLOWED = (33, 102, 172)  # maskattn::viz::kAllowedColor
MASKED = (236, 236, 236)  # kMaskedColor
HATCH = (150, 150, 150)  # kHatchColor
DIAGONAL = (230, 120, 20)  # kDiagonalColor
AXIS = (110, 110, 110)  # the frame around cells and colour bars
TINY_BERT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "tiny_bert"


def decode(png: bytes) -> np.ndarray:
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.mode == "RGB"
    return np.asarray(im)


def frames(img: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) inside each AXIS-grey rectangle, in reading order."""
    axis = np.all(img == AXIS, axis=2)
    runs: dict[tuple[int, int], list[int]] = {}
    for y in range(axis.shape[0]):
        row = np.flatnonzero(np.diff(np.concatenate(([0], axis[y].astype(np.int8), [0]))))
        for start, end in zip(row[::2], row[1::2]):
            if end - start >= 10:
                runs.setdefault((int(start), int(end)), []).append(y)
    boxes = []
    for (x0, x1), ys in runs.items():
        # A frame: a top and a bottom edge joined by grey side columns.
        for top in ys:
            for bottom in ys:
                if bottom - top >= 4 and axis[top:bottom, x0].all() and axis[top:bottom, x1 - 1].all():
                    boxes.append((x0 + 1, top + 1, x1 - x0 - 2, bottom - top - 1))
                    break
    # Cell areas are at least 20 pixels each way, the colour bar 16 wide (the
    # legend's 12-pixel swatches are not frames).
    boxes = sorted({b for b in boxes if max(b[2], b[3]) >= 20}, key=lambda b: (b[1], b[0]))
    # Keep the outermost of nested candidates.
    return [b for b in boxes if not any(o != b and o[0] <= b[0] and o[1] <= b[1] and
                                        o[0] + o[2] >= b[0] + b[2] and o[1] + o[3] >= b[1] + b[3]
                                        for o in boxes)]


def cell(img, box, rows, cols, i, j):
    x, y, w, h = box
    return tuple(int(c) for c in img[y + (2 * i + 1) * h // (2 * rows), x + (2 * j + 1) * w // (2 * cols)])


def cell_colors(img, box, rows, cols, i, j) -> set[tuple[int, int, int]]:
    x, y, w, h = box
    part = img[y + i * h // rows + 1 : y + (i + 1) * h // rows - 1,
               x + j * w // cols + 1 : x + (j + 1) * w // cols - 1]
    return {tuple(int(c) for c in p) for p in part.reshape(-1, 3)}


def panels_and_bar(img):
    """The cell areas (wide frames) and the colour bar (the 16-pixel-wide one)."""
    boxes = frames(img)
    bars = [b for b in boxes if b[2] == 16]
    return [b for b in boxes if b[2] != 16], bars


def test_mask_png_cells_diagonal_and_panels():
    lengths = [5, 3, 8]
    img = decode(ma.viz.mask_png(ma.causal() & ma.key_lengths(lengths), 3, 2, 8, 8))
    panels, bars = panels_and_bar(img)
    assert len(panels) == 3 and not bars, "one panel per batch element; heads agree; no colour bar"
    for b, box in enumerate(panels):
        assert box[2] == box[3]
        for i in range(8):
            for j in range(8):
                allowed = j <= i and j < lengths[b]
                assert cell(img, box, 8, 8, i, j) == (ALLOWED if allowed else MASKED), (b, i, j)
        # The diagonal's outline: the left edge of cell (i, i).
        x, y, w, _ = box
        c = w // 8
        assert tuple(img[y + 5 * c + c // 2, x + 5 * c + 1]) == DIAGONAL


def test_mask_png_bottom_right_and_labels():
    img = decode(ma.viz.mask_png(ma.causal("bottom_right"), 1, 1, 2, 5,
                                 query_labels=["x", "y"], key_labels=list("abcde"),
                                 diagonal="bottom_right"))
    (box,), _ = panels_and_bar(img)
    assert cell(img, box, 2, 5, 0, 3) == ALLOWED and cell(img, box, 2, 5, 0, 4) == MASKED
    x, y, w, h = box
    assert tuple(img[y + h // 4, x + 3 * w // 5 + 1]) == DIAGONAL


def test_attention_png_against_torch_weights():
    # torch computes the weights (SDPA's math: softmax of q k^T / sqrt(d) + mask);
    # the picture colours them with viridis and hatches what the mask forbids.
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    keep = torch.tril(torch.ones(5, 5, dtype=torch.bool))
    keep[:, 4] = False  # key 4 is padding
    scores = (q @ k.transpose(-1, -2) / 2.0).masked_fill(~keep, float("-inf"))
    w = torch.softmax(scores, dim=-1)
    mask = ma.from_sdpa_mask(keep.numpy())
    img = decode(ma.viz.attention_png(w, mask, query_labels=list("abcde"), key_labels=list("abcde")))
    panels, bars = panels_and_bar(img)
    assert len(panels) == 3, "head 0, head 1, mean"
    assert len(bars) == 1, "a colour bar"
    vmax = float(w.max())
    mean = w.mean(dim=1)
    from matplotlib import colormaps

    viridis = colormaps["viridis"]
    for p, box in enumerate(panels):
        for i in range(5):
            for j in range(5):
                if keep[i, j]:
                    x = float(w[0, p, i, j] if p < 2 else mean[0, i, j])
                    want = np.array(viridis(x / vmax)[:3]) * 255
                    got = np.array(cell(img, box, 5, 5, i, j))
                    # Linear interpolation between 33 of viridis' colours.
                    assert np.abs(got - want).max() <= 4, (p, i, j, got, want)
                else:
                    assert cell_colors(img, box, 5, 5, i, j) == {MASKED, HATCH}, (p, i, j)
    # The colour bar: viridis(1) on top, viridis(0) at the bottom.
    x, y, bw, bh = bars[0]
    assert np.abs(img[y, x + bw // 2] - np.array(viridis(1.0)[:3]) * 255).max() <= 4
    assert np.abs(img[y + bh - 1, x + bw // 2] - np.array(viridis(0.0)[:3]) * 255).max() <= 4


def test_heatmap_png_viridis_and_diverging_match_matplotlib():
    from matplotlib import colormaps

    t = np.linspace(0, 1, 101, dtype=np.float32)[None, :]
    for name, mpl in (("viridis", "viridis"), ("diverging", "RdBu_r")):
        img = decode(ma.viz.heatmap_png(t, colormap=name, vmin=0.0, vmax=1.0))
        (box,), _ = panels_and_bar(img)
        worst = max(
            np.abs(np.array(cell(img, box, 1, 101, 0, j)) - np.array(colormaps[mpl](t[0, j])[:3]) * 255).max()
            for j in range(101)
        )
        # 33 (viridis) and 11 (RdBu) anchors linearly interpolated: measured
        # worst 3.1 and 3.2 levels of 255 over 2,001 values.
        assert worst <= 4, (name, worst)


def test_encoding_png_has_heatmap_and_curves():
    pe = ma.sinusoidal_encoding(40, 16)
    img = decode(ma.viz.encoding_png(pe, dims=[0, 6]))
    boxes = frames(img)
    heat = [b for b in boxes if b[2] != 16][0]
    # PE = 1 at (0, 1) (cos 0): the diverging map's dark red end.
    assert cell(img, heat, 40, 16, 0, 1) == (0x67, 0x00, 0x1F)
    assert cell(img, heat, 40, 16, 0, 0) == (0xF7, 0xF7, 0xF7), "sin 0 = 0: white"
    # A second framed area below the heatmap: the curves, in tab10 blue and orange.
    curves = [b for b in boxes if b[1] > heat[1] + heat[3]]
    assert curves
    x, y, w, h = curves[0]
    area = img[y : y + h, x : x + w].reshape(-1, 3)
    assert (area == (31, 119, 180)).all(axis=1).sum() > 20
    assert (area == (255, 127, 14)).all(axis=1).sum() > 20


def test_bert_attentions_picture_hatches_the_padding():
    model = ma.BertModel.from_pretrained(TINY_BERT)
    ids = np.array([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]], dtype=np.int64)
    attention_mask = (ids != 0).astype(np.int64)
    _, attentions = model(ids, attention_mask=attention_mask, output_attentions=True)
    layers = [attentions[i] for i in range(attentions.shape[0])]
    mask = ma.from_hf_attention_mask(attention_mask)
    img = decode(ma.viz.attention_png(layers, mask, batch=[1], mean=False))
    panels, _ = panels_and_bar(img)
    assert len(panels) == model.num_hidden_layers * model.num_attention_heads
    for box in panels:
        for i in range(5):
            assert cell_colors(img, box, 5, 5, i, 4) == {MASKED, HATCH}
            assert MASKED not in cell_colors(img, box, 5, 5, i, 0)


def test_show_draws_with_matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    png = ma.viz.mask_png(ma.causal(), 1, 1, 4, 4)
    ax = ma.viz.show(png)
    image = ax.get_images()[0].get_array()
    assert image.shape[:2] == decode(png).shape[:2]
    with pytest.raises(ValueError, match="png"):
        ma.viz.show("not bytes")


def test_html_is_one_self_contained_page():
    html = ma.viz.mask_html(ma.causal(), 1, 1, 4, 4)
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "http://" not in html and "https://" not in html


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ma.viz.mask_png(ma.key_lengths([1, 2]), 3, 1, 4, 4), "mask"),
        (lambda: ma.viz.mask_png(None, 1, 1, 0, 4), "shape"),
        (lambda: ma.viz.mask_png(None, 1, 1, 2, 2, query_labels=["a"]), "query_labels"),
        (lambda: ma.viz.mask_png(None, 1, 1, 2, 2, diagonal="top-left"), "diagonal"),
        (lambda: ma.viz.attention_png(np.zeros((1, 1, 2, 2), np.float32), heads=[3]), "heads"),
        (lambda: ma.viz.attention_png(np.zeros((1, 2, 2), np.float32)), "weights"),
        (lambda: ma.viz.attention_png([]), "weights"),
        (lambda: ma.viz.attention_png([np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 3))]), r"weights\[1\]"),
        (lambda: ma.viz.attention_png(np.zeros((1, 1, 2, 2)), vmax=-1.0), "vmax"),
        (lambda: ma.viz.encoding_png(np.zeros((4, 4)), dims=[9]), "dims"),
        (lambda: ma.viz.heatmap_png(np.eye(2), colormap="jet"), "colormap"),
        (lambda: ma.viz.heatmap_png(np.eye(2), masked=np.eye(3, dtype=bool)), "masked"),
        (lambda: ma.viz.heatmap_png(np.eye(2), vmin=2.0, vmax=1.0), "vmin"),
        (lambda: ma.viz.mask_png(ma.causal(), 300, 1, 2, 2), "panels"),
    ],
)
def test_bad_input_is_a_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
