"""maskattn.attention on torch.bfloat16 q, k, v, against PyTorch 2.x.

What this file proves, and against what (each test runs on both backends,
conftest.BACKENDS):
  1. torch's F.scaled_dot_product_attention computed in float32 on the same
     bfloat16 values (q.float(), k.float(), v.float()): no mask, a causal mask,
     key padding, GQA (Hq = 8, Hkv = 2), a one-token decode (Lq = 1,
     Lk = 3000) and sizes past one tile. Tolerance (out_atol): flash within
     4e-3 * max |v| -- its scores are exact products of bfloat16 values
     summed in float32, but on a CPU with AVX-512 BF16 it rounds the
     probabilities to bfloat16 (relative error 2^-9) before they meet v, as
     GPU flash attention does (elsewhere it widens to float32); reference
     within OUT_ATOL (conftest), as it computes bfloat16 input in double.
     (4e-3 * max |v| cannot see one key too many or too few in a row of
     hundreds of keys; the float32 tests of test_attention_parity.py can.)
  2. The inputs are read as exactly their bfloat16 values: on bfloat16 input
     each backend gives what it gives on the float32 copy of the same values,
     within out_atol; weights and lse, float32 results, are within
     WEIGHTS_ATOL / LSE_ATOL of the float64 oracle.
  3. Layouts and results: a (B, L, H, D) buffer viewed as (B, H, L, D) and a
     strided last dimension (which the binding copies) give exactly the
     result of contiguous copies; a tensor that requires grad is read; results
     are float32 numpy arrays; inputs are not modified.
Mixed storage (bfloat16 next to float32), float16 and numpy uint16 are
ValueErrors naming the argument: test_errors.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import LSE_ATOL, OUT_ATOL, WEIGHTS_ATOL, attention_f64, neg_inf_where_blocked, randn

import maskattn as ma

FLASH_OUT_ATOL_PER_MAX_V = 4e-3


def out_atol(backend: str, v: torch.Tensor) -> float:
    """The bound for out on bfloat16 inputs: 4e-3 * max |v| for flash, OUT_ATOL for reference."""
    if backend == "reference":
        return OUT_ATOL
    return FLASH_OUT_ATOL_PER_MAX_V * float(v.float().abs().max())


def bf16(rng, *shape: int) -> torch.Tensor:
    """A unit-variance torch.bfloat16 tensor (float32 values rounded to nearest)."""
    return torch.from_numpy(randn(rng, *shape)).bfloat16()


def qkv(rng, b, hq, hkv, lq, lk, d):
    return bf16(rng, b, hq, lq, d), bf16(rng, b, hkv, lk, d), bf16(rng, b, hkv, lk, d)


def sdpa_f32(q, k, v, keep=None, **kwargs) -> np.ndarray:
    """PyTorch's SDPA in float32 on the bfloat16 values; keep: bool, True = may attend."""
    m = None if keep is None else torch.from_numpy(np.ascontiguousarray(keep))
    with torch.no_grad():
        return F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask=m, **kwargs
        ).numpy()


def assert_close_to_sdpa(backend, out, q, k, v, keep=None, **kwargs):
    assert out.dtype == np.float32
    expected = sdpa_f32(q, k, v, keep, **kwargs)
    np.testing.assert_allclose(out, expected, rtol=0, atol=out_atol(backend, v))


# --------------------------------------------------------------------------
# 1. Against SDPA in float32 on the same values
# --------------------------------------------------------------------------


def test_no_mask(rng, backend, attend):
    q, k, v = qkv(rng, 2, 4, 4, 37, 53, 64)
    assert_close_to_sdpa(backend, attend(q, k, v), q, k, v)


@pytest.mark.parametrize("lq,lk", [(64, 64), (20, 90)])
def test_causal(rng, lq, lk, backend, attend):
    q, k, v = qkv(rng, 2, 4, 4, lq, lk, 64)
    assert_close_to_sdpa(backend, attend(q, k, v, ma.causal()), q, k, v, is_causal=True)


def test_key_padding(rng, backend, attend):
    b, h, lq, lk, d = 3, 4, 40, 70, 64
    lens = [70, 31, 1]
    q, k, v = qkv(rng, b, h, h, lq, lk, d)
    keep = np.arange(lk)[None, None, None, :] < np.array(lens)[:, None, None, None]  # (B,1,1,Lk)
    out = attend(q, k, v, ma.key_lengths(lens))
    assert_close_to_sdpa(backend, out, q, k, v, keep)


@pytest.mark.parametrize("causal", [False, True])
def test_gqa_8_query_heads_2_kv_heads(rng, causal, backend, attend):
    q, k, v = qkv(rng, 2, 8, 2, 48, 48, 64)
    out = attend(q, k, v, ma.causal() if causal else None)
    assert_close_to_sdpa(backend, out, q, k, v, is_causal=causal, enable_gqa=True)


def test_one_token_decode_gqa_key_padding(rng, backend, attend):
    # One new query against a 3000-key cache, 8 query heads sharing 2 KV heads,
    # the second sequence's cache holding 1234 keys.
    b, hq, hkv, lk, d = 2, 8, 2, 3000, 128
    lens = [lk, 1234]
    q, k, v = qkv(rng, b, hq, hkv, 1, lk, d)
    keep = np.arange(lk)[None, None, None, :] < np.array(lens)[:, None, None, None]
    out = attend(q, k, v, ma.causal("bottom_right") & ma.key_lengths(lens))
    assert out.shape == (b, hq, 1, d)
    assert_close_to_sdpa(backend, out, q, k, v, keep, enable_gqa=True)


def test_many_tiles_causal_and_key_padding(rng, backend, attend):
    b, h, length, d = 2, 2, 333, 64
    lens = [333, 200]
    q, k, v = qkv(rng, b, h, h, length, length, d)
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    keep = (j <= i) & (j < np.array(lens)[:, None, None, None])
    out = attend(q, k, v, ma.causal() & ma.key_lengths(lens))
    assert_close_to_sdpa(backend, out, q, k, v, keep)


# --------------------------------------------------------------------------
# 2. Read as exactly their bfloat16 values
# --------------------------------------------------------------------------


def test_bf16_input_gives_the_float32_result_of_the_same_values(rng, backend, attend):
    q, k, v = qkv(rng, 2, 4, 2, 33, 65, 32)
    mask = ma.causal("bottom_right")
    out = attend(q, k, v, mask)
    out_f32 = attend(q.float(), k.float(), v.float(), mask)
    np.testing.assert_allclose(out, out_f32, rtol=0, atol=out_atol(backend, v))


def test_weights_and_lse_are_float32_accurate(rng, backend, attend):
    b, hq, hkv, lq, lk, d = 2, 4, 2, 9, 130, 64
    q, k, v = qkv(rng, b, hq, hkv, lq, lk, d)
    out, w, lse = attend(q, k, v, ma.causal("bottom_right"), need_weights=True, return_lse=True)
    assert w.dtype == np.float32 and lse.dtype == np.float32
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    allowed = j <= i + (lk - lq)
    e_out, e_w, e_lse = attention_f64(
        q.float().numpy(), k.float().numpy(), v.float().numpy(), neg_inf_where_blocked(allowed)
    )
    np.testing.assert_allclose(w, e_w, rtol=0, atol=WEIGHTS_ATOL)
    np.testing.assert_allclose(lse, e_lse, rtol=0, atol=LSE_ATOL)
    np.testing.assert_allclose(out, e_out, rtol=0, atol=out_atol(backend, v))


# --------------------------------------------------------------------------
# 3. Layouts and results
# --------------------------------------------------------------------------


def run_all(q, k, v, attend):
    return attend(q, k, v, ma.causal("bottom_right"), need_weights=True, return_lse=True)


def assert_exactly_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype == np.float32
        assert np.array_equal(x, y, equal_nan=True)


def test_blhd_buffer_viewed_as_bhld_equals_contiguous(rng, attend):
    b, hq, hkv, lq, lk, d = 2, 4, 2, 5, 70, 16
    q = bf16(rng, b, lq, hq, d).transpose(1, 2)
    k = bf16(rng, b, lk, hkv, d).transpose(1, 2)
    v = bf16(rng, b, lk, hkv, d).transpose(1, 2)
    assert not q.is_contiguous()
    contiguous = [x.contiguous() for x in (q, k, v)]
    assert_exactly_equal(run_all(q, k, v, attend), run_all(*contiguous, attend))


def test_strided_last_dimension_equals_contiguous(rng, attend):
    # numpy cannot copy bfloat16: the binding copies this layout itself.
    q, k, v = (x[..., ::2] for x in qkv(rng, 2, 4, 2, 6, 40, 32))
    assert q.stride(-1) == 2
    contiguous = [x.contiguous() for x in (q, k, v)]
    assert_exactly_equal(run_all(q, k, v, attend), run_all(*contiguous, attend))


def test_requires_grad_tensor_is_read_and_inputs_are_not_modified(rng, attend):
    q, k, v = qkv(rng, 2, 4, 2, 6, 40, 16)
    saved = [x.clone() for x in (q, k, v)]
    tq = q.clone().requires_grad_()
    out = attend(tq, k, v, ma.causal(), dropout_p=0.2, seed=3)
    assert type(out) is np.ndarray and out.dtype == np.float32 and out.shape == (2, 4, 6, 16)
    assert np.array_equal(out, attend(q, k, v, ma.causal(), dropout_p=0.2, seed=3))
    for x, y in zip((q, k, v), saved):
        assert torch.equal(x, y)
    assert tq.grad is None
