"""Pictures of masks, positional encodings and attention weights.

Every picture comes in two forms, drawn by the C++ library (no plotting
package needed):

- ``*_png(...)`` returns the bytes of a PNG file: write them to a ``.png``
  file, show them in a notebook (``IPython.display.Image(data)``), or draw
  them into a matplotlib figure with :func:`show`;
- ``*_html(...)`` returns one self-contained HTML page (no network access):
  a selector per layer / batch element / head, a read-out of the cell under
  the pointer, zoom for long sequences.

    >>> import numpy as np, maskattn as ma
    >>> png = ma.viz.mask_png(ma.causal() & ma.key_lengths([5, 3, 8]), 3, 1, 8, 8)
    >>> open("mask.png", "wb").write(png)
"""

from __future__ import annotations

import io

from ._maskattn import viz as _ext

attention_html = _ext.attention_html
attention_png = _ext.attention_png
encoding_html = _ext.encoding_html
encoding_png = _ext.encoding_png
heatmap_html = _ext.heatmap_html
heatmap_png = _ext.heatmap_png
mask_html = _ext.mask_html
mask_png = _ext.mask_png


def show(png, ax=None):
    """Draw a picture (the bytes a ``*_png`` function returns) with matplotlib.

    Draws into ``ax`` (a matplotlib Axes) or, when it is None, into a new
    figure sized so that one picture pixel is one screen pixel at 100 dpi.
    Returns the Axes. matplotlib is optional: without it this raises
    ImportError saying how to get it (the ``*_png`` functions do not need it).
    """
    try:
        import matplotlib.image as mpimg
        import matplotlib.pyplot as plt
    except ImportError as e:  # matplotlib is an option, not a dependency
        raise ImportError(
            "maskattn.viz.show draws with matplotlib, which is not installed "
            "(pip install matplotlib, or Debian's python3-matplotlib); "
            "the *_png functions return PNG bytes without it"
        ) from e
    if not isinstance(png, (bytes, bytearray, memoryview)):
        raise ValueError(f"png: expected the bytes of a PNG file, got {type(png).__name__}")
    image = mpimg.imread(io.BytesIO(png), format="png")
    if ax is None:
        height, width = image.shape[:2]
        _, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100)
        ax.figure.subplots_adjust(0, 0, 1, 1)
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
    return ax


__all__ = [
    "attention_html",
    "attention_png",
    "encoding_html",
    "encoding_png",
    "heatmap_html",
    "heatmap_png",
    "mask_html",
    "mask_png",
    "show",
]
