"""Pictures of masks, positional encodings and attention weights (PNG bytes and
self-contained HTML pages). See maskattn/viz.py."""

from collections.abc import Sequence
from typing import Any, Literal

from ._maskattn import Mask

_Array = Any  # numpy array, torch CPU tensor, or anything numpy.asarray() takes

def mask_png(
    mask: Mask | None,
    batch: int,
    heads: int,
    q_len: int,
    k_len: int,
    *,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    diagonal: Literal["top_left", "bottom_right"] = "top_left",
    title: str = "",
) -> bytes:
    """A picture of `mask` over (batch, heads, q_len, k_len) as PNG bytes: one
    panel per batch element (and per group of heads that differ), may attend vs
    masked, the diagonal outlined."""

def mask_html(
    mask: Mask | None,
    batch: int,
    heads: int,
    q_len: int,
    k_len: int,
    *,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    diagonal: Literal["top_left", "bottom_right"] = "top_left",
    title: str = "",
) -> str:
    """The mask picture as a self-contained HTML page."""

def encoding_png(pe: _Array, *, dims: Sequence[int] | None = None, title: str = "") -> bytes:
    """A positional encoding pe (length, dim) as PNG bytes: a heatmap in diverging
    colours above curves of the columns `dims` against position."""

def encoding_html(pe: _Array, *, dims: Sequence[int] | None = None, title: str = "") -> str:
    """The encoding picture as a self-contained HTML page."""

def attention_png(
    weights: _Array | Sequence[_Array],
    mask: Mask | None = None,
    *,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    batch: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    mean: bool = True,
    vmax: float | None = None,
    title: str = "",
) -> bytes:
    """Attention weights (B, H, Lq, Lk), or a list of them (layers), as PNG bytes:
    a panel per (layer, batch element, head) and the mean over heads, the cells
    the mask forbids hatched."""

def attention_html(
    weights: _Array | Sequence[_Array],
    mask: Mask | None = None,
    *,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    batch: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    mean: bool = True,
    vmax: float | None = None,
    title: str = "",
) -> str:
    """The attention picture as a self-contained HTML page: layer / batch / head
    selectors, hover read-out, zoom."""

def heatmap_png(
    values: _Array,
    *,
    title: str = "",
    row_axis: str = "row",
    col_axis: str = "column",
    value_name: str = "value",
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    colormap: Literal["viridis", "diverging"] = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    masked: _Array | None = None,
) -> bytes:
    """Any matrix (rows, cols) as a heatmap with a colour bar, PNG bytes."""

def heatmap_html(
    values: _Array,
    *,
    title: str = "",
    row_axis: str = "row",
    col_axis: str = "column",
    value_name: str = "value",
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    colormap: Literal["viridis", "diverging"] = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    masked: _Array | None = None,
) -> str:
    """The heatmap as a self-contained HTML page."""

def show(png: bytes, ax: Any = None) -> Any:
    """Draw PNG bytes with matplotlib (optional); returns the Axes."""

__all__: list[str]
