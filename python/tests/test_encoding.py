"""maskattn.sinusoidal_encoding against the paper's formula and PyTorch's tutorial.

What it proves:
  * The write-ups' PE (8, 4) equals Vaswani et al. (2017), section 3.5,
    PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...), computed
    here in float64 numpy (within 1e-6), and so do larger tables.
  * (100, 64) equals the `PositionalEncoding` buffer of the PyTorch
    "Language Modeling with nn.Transformer" tutorial, rebuilt here in torch
    float32 (within 1e-5: the tutorial's own float32 rounding).
  * layout="concatenated" puts the same sines in the first half and cosines in
    the second half; another base follows the same formula with that base.
  * The result is float32 of shape (length, dim); bad input raises ValueError
    naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import maskattn as ma

PAPER_ATOL = 1e-6  # float64 formula vs values computed in double, stored as float32
TUTORIAL_ATOL = 1e-5  # the tutorial computes its angles in float32


def paper_angles(length: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """angle[pos, i] = pos / base^(2i / dim), float64, (length, dim / 2)."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    two_i = np.arange(0, dim, 2, dtype=np.float64)[None, :]
    return pos / np.power(base, two_i / dim)


def paper_interleaved(length: int, dim: int, base: float = 10000.0) -> np.ndarray:
    angle = paper_angles(length, dim, base)
    pe = np.empty((length, dim), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)
    return pe


def tutorial_positional_encoding(max_len: int, d_model: int) -> np.ndarray:
    """The buffer of the PyTorch tutorial's PositionalEncoding module (float32)."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.numpy()


def test_write_ups_eight_by_four_matches_the_paper_formula():
    pe = ma.sinusoidal_encoding(8, 4)
    assert pe.shape == (8, 4)
    assert pe.dtype == np.float32
    np.testing.assert_allclose(pe, paper_interleaved(8, 4), rtol=0, atol=PAPER_ATOL)
    # Hand-known cells: position 0 is sin 0 = 0, cos 0 = 1; d = 4 has the
    # frequencies 1 and 1/100.
    np.testing.assert_array_equal(pe[0], [0.0, 1.0, 0.0, 1.0])
    row1 = [math.sin(1.0), math.cos(1.0), math.sin(0.01), math.cos(0.01)]
    np.testing.assert_allclose(pe[1], row1, rtol=0, atol=PAPER_ATOL)


@pytest.mark.parametrize("length, dim", [(1, 2), (50, 6), (512, 128)])
def test_paper_formula_for_other_sizes(length, dim):
    pe = ma.sinusoidal_encoding(length, dim)
    assert pe.shape == (length, dim) and pe.dtype == np.float32
    np.testing.assert_allclose(pe, paper_interleaved(length, dim), rtol=0, atol=PAPER_ATOL)


def test_matches_the_pytorch_tutorial_positional_encoding_buffer():
    pe = ma.sinusoidal_encoding(100, 64)
    expected = tutorial_positional_encoding(100, 64)
    assert pe.shape == expected.shape == (100, 64)
    np.testing.assert_allclose(pe, expected, rtol=0, atol=TUTORIAL_ATOL)


@pytest.mark.parametrize("length, dim", [(8, 4), (33, 10), (100, 64)])
def test_concatenated_layout_puts_sines_first_then_cosines(length, dim):
    pe = ma.sinusoidal_encoding(length, dim, layout="concatenated")
    assert pe.shape == (length, dim) and pe.dtype == np.float32
    angle = paper_angles(length, dim)
    half = dim // 2
    np.testing.assert_allclose(pe[:, :half], np.sin(angle), rtol=0, atol=PAPER_ATOL)
    np.testing.assert_allclose(pe[:, half:], np.cos(angle), rtol=0, atol=PAPER_ATOL)
    # The explicit default layout is the interleaved one.
    np.testing.assert_array_equal(
        ma.sinusoidal_encoding(length, dim, layout="interleaved"),
        ma.sinusoidal_encoding(length, dim),
    )


@pytest.mark.parametrize("base", [2.0, 500.0, 1e6])
def test_another_base_follows_the_formula_with_that_base(base):
    length, dim = 40, 12
    pe = ma.sinusoidal_encoding(length, dim, base)
    np.testing.assert_allclose(pe, paper_interleaved(length, dim, base), rtol=0, atol=PAPER_ATOL)
    angle = paper_angles(length, dim, base)
    np.testing.assert_allclose(
        ma.sinusoidal_encoding(length, dim, base=base, layout="concatenated"),
        np.concatenate([np.sin(angle), np.cos(angle)], axis=1),
        rtol=0,
        atol=PAPER_ATOL,
    )
    # Column pair 0 has frequency 1 whatever the base; the others differ from 10000's.
    paper = ma.sinusoidal_encoding(length, dim)
    np.testing.assert_array_equal(pe[:, :2], paper[:, :2])
    assert np.abs(pe[:, 2:] - paper[:, 2:]).max() > 0.1


def test_zero_length_gives_an_empty_table():
    pe = ma.sinusoidal_encoding(0, 8)
    assert pe.shape == (0, 8) and pe.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(length=4, dim=3), "dim"),
        (dict(length=4, dim=7), "dim"),
        (dict(length=4, dim=0), "dim"),
        (dict(length=4, dim=-2), "dim"),
        (dict(length=4, dim=4, base=1.0), "base"),
        (dict(length=4, dim=4, base=0.5), "base"),
        (dict(length=4, dim=4, base=0.0), "base"),
        (dict(length=4, dim=4, base=-10.0), "base"),
        (dict(length=4, dim=4, base=math.inf), "base"),
        (dict(length=4, dim=4, base=math.nan), "base"),
        (dict(length=-1, dim=4), "length"),
        (dict(length=4, dim=4, layout="halves"), "layout"),
        (dict(length=4, dim=4, layout="Interleaved"), "layout"),
    ],
    ids=lambda x: x if isinstance(x, str) else "-".join(f"{k}={v}" for k, v in x.items()),
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=rf"\b{argument}: expected"):
        ma.sinusoidal_encoding(**kwargs)
