"""maskattn.attention_backward against PyTorch 2.x autograd.

The reference is torch autograd through torch.nn.functional.scaled_dot_product_attention
in float64 (same inputs, same masks, dropout off): loss = sum(out * dout), so its
gradients with respect to q, k, v are what attention_backward returns for that dout.
Covered: no mask, bool and float attn_mask (ma.from_sdpa_mask), is_causal
(ma.causal() and from_sdpa_mask(is_causal=True)), an explicit scale, enable_gqa
(GQA and MQA), a float additive bias (ma.bias), a length past one tile, q, k, v
as torch tensors and numpy arrays, strided (BLHD) inputs; both backends.
Then what SDPA lacks, checked between the backends: dropout replayed from the
seed, head_mask, softcap; and the errors.

Tolerance: each gradient within GRAD_RTOL of its scale (max |torch gradient|,
at least 1): float32 inputs, out and lse, and flash's float32 sums over up to L
terms, against float64 autograd. Measured worst: 1.4e-7 (reference) and 8.5e-7
(flash) of the scale.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import BACKENDS, randn

import maskattn as ma

GRAD_RTOL = 2e-5


def torch_grads(q, k, v, dout, attn_mask=None, **kwargs):
    """dq, dk, dv of sum(SDPA(q, k, v) * dout) by float64 autograd."""
    t = [torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=True) for x in (q, k, v)]
    m = None
    if attn_mask is not None:
        m = torch.from_numpy(np.ascontiguousarray(attn_mask))
        if m.dtype != torch.bool:
            m = m.to(torch.float64)
    out = F.scaled_dot_product_attention(*t, attn_mask=m, **kwargs)
    (out * torch.from_numpy(np.asarray(dout, dtype=np.float64))).sum().backward()
    return tuple(x.grad.numpy() for x in t)


def ma_grads(q, k, v, dout, mask=None, **kwargs):
    """The forward with its lse, then attention_backward with the same options."""
    out, lse = ma.attention(q, k, v, mask, return_lse=True, **kwargs)
    return ma.attention_backward(q, k, v, out, lse, dout, mask, **kwargs)


def assert_grads_close(got, want):
    for name, g, w in zip(("dq", "dk", "dv"), got, want):
        assert g.dtype == np.float32 and g.shape == w.shape, name
        scale = max(1.0, float(np.abs(w).max()))
        err = float(np.abs(g - w).max()) / scale
        assert err <= GRAD_RTOL, f"{name}: max error {err:.2e} of scale {scale:.3g}"


def problem(seed, b, hq, hkv, lq, lk, d, dv=None):
    rng = np.random.default_rng(seed)
    q, k, v = randn(rng, b, hq, lq, d), randn(rng, b, hkv, lk, d), randn(rng, b, hkv, lk, dv or d)
    return rng, q, k, v, randn(rng, b, hq, lq, dv or d)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_no_mask(backend, kind):
    _, q, k, v, g = problem(1, 2, 3, 3, 7, 9, 8)
    want = torch_grads(q, k, v, g)
    if kind == "torch":
        q, k, v, g = (torch.from_numpy(x) for x in (q, k, v, g))
    assert_grads_close(ma_grads(q, k, v, g, backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_attn_mask(backend):
    rng, q, k, v, g = problem(2, 2, 2, 2, 6, 10, 8)
    for shape in [(6, 10), (2, 1, 6, 10), (2, 2, 6, 10)]:
        keep = rng.random(shape) < 0.6
        keep[..., 0] = True  # no empty row: SDPA gives NaN there
        want = torch_grads(q, k, v, g, attn_mask=keep)
        assert_grads_close(ma_grads(q, k, v, g, ma.from_sdpa_mask(keep), backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_attn_mask_and_bias(backend):
    rng, q, k, v, g = problem(3, 1, 2, 2, 5, 8, 4)
    add = rng.uniform(-2, 2, (1, 2, 5, 8)).astype(np.float32)
    add[0, 1, 2, 3] = -np.inf
    want = torch_grads(q, k, v, g, attn_mask=add)
    assert_grads_close(ma_grads(q, k, v, g, ma.from_sdpa_mask(add), backend=backend), want)
    # The same additive bias as a maskattn bias, with a causal mask on top.
    bias = add[0, 0]
    causal_bias = bias + np.triu(np.full((5, 8), -np.inf, np.float32), 1)
    want = torch_grads(q, k, v, g, attn_mask=causal_bias)
    assert_grads_close(ma_grads(q, k, v, g, ma.bias(bias) & ma.causal(), backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_is_causal_and_scale(backend):
    _, q, k, v, g = problem(4, 2, 2, 2, 9, 9, 16)
    want = torch_grads(q, k, v, g, is_causal=True)
    assert_grads_close(ma_grads(q, k, v, g, ma.causal(), backend=backend), want)
    got = ma_grads(q, k, v, g, ma.from_sdpa_mask(is_causal=True), backend=backend)
    assert_grads_close(got, want)
    want = torch_grads(q, k, v, g, is_causal=True, scale=0.3)
    assert_grads_close(ma_grads(q, k, v, g, ma.causal(), scale=0.3, backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hkv", [2, 1])
def test_enable_gqa(backend, hkv):
    _, q, k, v, g = problem(5, 2, 4, hkv, 6, 7, 8, 5)
    want = torch_grads(q, k, v, g, is_causal=True, enable_gqa=True)
    got = ma_grads(q, k, v, g, ma.causal(), backend=backend)
    assert got[1].shape == (2, hkv, 7, 8)  # summed over the query heads of a group
    assert_grads_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_past_one_tile_with_strided_inputs(backend):
    rng, q, k, v, g = problem(6, 1, 4, 2, 150, 150, 64)
    want = torch_grads(q, k, v, g, is_causal=True, enable_gqa=True)
    # BLHD memory viewed as BHLD (no copy).
    blhd = [np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3) for x in (q, k, v)]
    assert not blhd[0].flags.c_contiguous
    assert_grads_close(ma_grads(*blhd, g, ma.causal(), backend=backend), want)


def test_what_sdpa_lacks_agrees_between_backends():
    """Dropout (replayed from the seed), head_mask and softcap: flash against
    the reference backward, both from the same out and lse."""
    _, q, k, v, g = problem(7, 2, 4, 2, 40, 50, 16)
    opts = dict(
        dropout_p=0.2, seed=3, head_mask=np.array([1.0, 0.5, 0.0, 2.0], np.float32), softcap=5.0
    )
    mask = ma.causal("bottom_right")
    out, lse = ma.attention(q, k, v, mask, return_lse=True, **opts)
    ref = ma.attention_backward(q, k, v, out, lse, g, mask, backend="reference", **opts)
    fl = ma.attention_backward(q, k, v, out, lse, g, mask, backend="flash", **opts)
    for r, f in zip(ref, fl):
        assert float(np.abs(r - f).max()) <= GRAD_RTOL * max(1.0, float(np.abs(r).max()))
    # Another seed drops other elements: other gradients.
    other = ma.attention_backward(q, k, v, out, lse, g, mask, **{**opts, "seed": 4})
    assert not np.allclose(other[2], fl[2])


def test_errors():
    _, q, k, v, g = problem(8, 1, 2, 2, 4, 5, 8)
    out, lse = ma.attention(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match="dout"):
        ma.attention_backward(q, k, v, out, lse, g[:, :, :3])
    with pytest.raises(ValueError, match="lse"):
        ma.attention_backward(q, k, v, out, lse[:, :1], g)
    with pytest.raises(ValueError, match="q"):
        ma.attention_backward(q.astype(np.float64), k, v, out, lse, g)
    with pytest.raises(ValueError, match="k"):
        ma.attention_backward(
            torch.from_numpy(q), torch.from_numpy(k).to(torch.bfloat16), v, out, lse, g
        )
    with pytest.raises(ValueError, match="dropout_p"):
        ma.attention_backward(q, k, v, out, lse, g, dropout_p=1.0)
    with pytest.raises(ValueError, match="backend"):
        ma.attention_backward(q, k, v, out, lse, g, backend="fast")
    with pytest.raises(ValueError, match="mask"):
        ma.attention_backward(q, k, v, out, lse, g, ma.key_lengths([1, 2]))
