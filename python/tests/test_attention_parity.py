"""maskattn.attention against PyTorch 2.x.

What this file proves, and against what:
  1. torch.nn.functional.scaled_dot_product_attention (fp32, OUT_ATOL), for
     everything SDPA covers: no mask, bool and float attn_mask of rank 2..4
     with broadcast dims (via ma.from_sdpa_mask), is_causal (top-left, also
     as ma.causal()), enable_gqa (GQA and MQA) and an explicit scale; q, k, v
     passed as CPU torch tensors and as numpy arrays.
  2. The float64 oracle `attention_f64` (conftest) for what SDPA lacks:
     Dv != D, head_mask, softcap with a bias mask, need_weights / return_lse
     and their tuple forms, odd sizes.
  3. Empty rows (rows with no allowed key): empty_rows="zero" / "nan" /
     "error", and the NaN pitfall of textbook softmax and nn.MultiheadAttention.
  4. Dropout: reproducible from the seed, inverted-dropout scaling of the
     no-dropout weights, kept fraction, out == weights @ v.
  5. Layouts and inputs: strided views (BLHD viewed as BHLD, negative strides,
     a non-contiguous last dim) equal their contiguous copies exactly;
     requires_grad tensors; the result type; inputs untouched.
  6. GQA with a bottom-right causal mask and Lq != Lk against the oracle, whose
     mask is built from the rule j <= i + (Lk - Lq).
  7. Sizes past one tile (L = 333; causal, key padding, sliding window,
     documents) against SDPA, weights and lse there against the oracle, and
     the decoding shape (Lq = 1 and 4, Lk = 1500, GQA, key padding).
Every test that calls `attend` runs once per backend (conftest.BACKENDS:
"reference" and "flash"; "auto" runs flash, which the last test checks).
bfloat16 inputs are in test_attention_bf16.py.
Every oracle mask is built here from the rule under test, never from
maskattn's materialize().
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    LSE_ATOL,
    OUT_ATOL,
    WEIGHTS_ATOL,
    attention_f64,
    neg_inf_where_blocked,
    randn,
)

import maskattn as ma

INPUT_KINDS = ["torch", "numpy"]


def as_kind(kind: str, *arrays: np.ndarray):
    """The arrays as CPU torch tensors (kind "torch") or unchanged numpy arrays."""
    if kind == "torch":
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    return arrays


def sdpa(q, k, v, attn_mask=None, **kwargs) -> np.ndarray:
    """PyTorch's fp32 SDPA on numpy inputs; numpy result."""
    t = [torch.from_numpy(np.ascontiguousarray(x)) for x in (q, k, v)]
    m = None if attn_mask is None else torch.from_numpy(np.ascontiguousarray(attn_mask))
    with torch.no_grad():
        return F.scaled_dot_product_attention(*t, attn_mask=m, **kwargs).numpy()


def qkv(rng, b, hq, hkv, lq, lk, d, dv=None):
    return randn(rng, b, hq, lq, d), randn(rng, b, hkv, lk, d), randn(rng, b, hkv, lk, dv or d)


def random_keep(rng, shape) -> np.ndarray:
    """Random bool 'may attend' mask with at least one True in every row."""
    m = rng.random(shape) < 0.6
    m[..., 0] |= ~m.any(axis=-1)
    return m


# --------------------------------------------------------------------------
# 1. Against torch.nn.functional.scaled_dot_product_attention
# --------------------------------------------------------------------------

B, H, LQ, LK, D = 2, 3, 5, 7, 8


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_sdpa_no_mask(rng, kind, attend):
    q, k, v = qkv(rng, B, H, H, LQ, LK, D)
    out = attend(*as_kind(kind, q, k, v))
    np.testing.assert_allclose(out, sdpa(q, k, v), rtol=0, atol=OUT_ATOL)


# SDPA right-aligns the mask against (B, H, L, S): rank 3 is (H, L, S).
SDPA_MASK_SHAPES = [
    (LQ, LK),
    (H, LQ, LK),
    (1, LQ, LK),
    (H, 1, LK),
    (B, H, LQ, LK),
    (B, 1, LQ, LK),
    (1, H, 1, LK),
    (B, 1, 1, LK),
]


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("shape", SDPA_MASK_SHAPES, ids=str)
def test_sdpa_bool_mask_true_means_may_attend(rng, kind, shape, attend):
    q, k, v = qkv(rng, B, H, H, LQ, LK, D)
    keep = random_keep(rng, shape)
    assert not keep.all()  # the mask does mask something
    (q_, k_, v_, keep_) = as_kind(kind, q, k, v, keep)
    out = attend(q_, k_, v_, ma.from_sdpa_mask(keep_))
    np.testing.assert_allclose(out, sdpa(q, k, v, keep), rtol=0, atol=OUT_ATOL)


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("shape", [(LQ, LK), (H, LQ, LK), (B, 1, LQ, LK), (1, H, 1, LK)], ids=str)
def test_sdpa_float_additive_mask_with_neg_inf(rng, kind, shape, attend):
    q, k, v = qkv(rng, B, H, H, LQ, LK, D)
    bias = randn(rng, *shape)
    bias[~random_keep(rng, shape)] = -np.inf  # some -inf, never a whole row
    assert np.isneginf(bias).any()
    (q_, k_, v_, bias_) = as_kind(kind, q, k, v, bias)
    out = attend(q_, k_, v_, ma.from_sdpa_mask(bias_))
    np.testing.assert_allclose(out, sdpa(q, k, v, bias), rtol=0, atol=OUT_ATOL)


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("lq,lk", [(6, 6), (4, 9), (9, 4)])
@pytest.mark.parametrize("how", ["from_sdpa_mask", "causal"])
def test_sdpa_is_causal_is_top_left(rng, kind, lq, lk, how, attend):
    q, k, v = qkv(rng, B, H, H, lq, lk, D)
    mask = ma.from_sdpa_mask(is_causal=True) if how == "from_sdpa_mask" else ma.causal()
    out = attend(*as_kind(kind, q, k, v), mask)
    np.testing.assert_allclose(out, sdpa(q, k, v, is_causal=True), rtol=0, atol=OUT_ATOL)


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("hkv", [2, 1], ids=["gqa", "mqa"])
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_enable_gqa(rng, kind, hkv, causal, attend):
    q, k, v = qkv(rng, B, 4, hkv, 6, 6, D)
    mask = ma.from_sdpa_mask(is_causal=True) if causal else None
    out = attend(*as_kind(kind, q, k, v), mask)
    expected = sdpa(q, k, v, is_causal=causal, enable_gqa=True)
    np.testing.assert_allclose(out, expected, rtol=0, atol=OUT_ATOL)


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0])
def test_sdpa_explicit_scale(rng, kind, scale, attend):
    q, k, v = qkv(rng, B, H, H, LQ, LK, D)
    keep = random_keep(rng, (LQ, LK))
    (q_, k_, v_, keep_) = as_kind(kind, q, k, v, keep)
    out = attend(q_, k_, v_, ma.from_sdpa_mask(keep_), scale=scale)
    np.testing.assert_allclose(out, sdpa(q, k, v, keep, scale=scale), rtol=0, atol=OUT_ATOL)


# --------------------------------------------------------------------------
# 2. Against the float64 oracle
# --------------------------------------------------------------------------


def assert_matches_oracle(got, expected, *, weights=None, lse=None):
    """got/expected: (out, weights, lse) triples; compare what `got` carries."""
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=OUT_ATOL)
    if weights:
        np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=WEIGHTS_ATOL)
    if lse:
        np.testing.assert_allclose(got[2], expected[2], rtol=0, atol=LSE_ATOL)


def test_value_dim_differs_from_key_dim(rng, attend):
    q, k, v = qkv(rng, 2, 3, 3, 5, 6, 8, dv=5)
    out, w, lse = attend(q, k, v, need_weights=True, return_lse=True)
    assert out.shape == (2, 3, 5, 5)
    assert_matches_oracle((out, w, lse), attention_f64(q, k, v), weights=True, lse=True)


@pytest.mark.parametrize("form", ["(Hq,)", "(B, Hq)"])
def test_head_mask_scales_weights_and_output(rng, form, attend):
    b, hq = 2, 4
    q, k, v = qkv(rng, b, hq, 2, 5, 6, 8)
    if form == "(Hq,)":
        head_mask = np.array([1.0, 0.0, 0.5, 2.0], dtype=np.float32)
    else:
        head_mask = np.array([[1.0, 0.0, 0.5, 2.0], [0.25, 1.0, 0.0, 1.5]], dtype=np.float32)
    out, w, lse = attend(q, k, v, head_mask=head_mask, need_weights=True, return_lse=True)
    expected = attention_f64(q, k, v, head_mask=head_mask)
    # lse is the log-sum-exp of the scores: head_mask multiplies p after it.
    assert_matches_oracle((out, w, lse), expected, weights=True, lse=True)


@pytest.mark.parametrize("scale", [0.1, 0.7])
def test_scale_against_oracle(rng, scale, attend):
    q, k, v = qkv(rng, 2, 2, 2, 4, 9, 16)
    got = attend(q, k, v, scale=scale, need_weights=True, return_lse=True)
    assert_matches_oracle(got, attention_f64(q, k, v, scale=scale), weights=True, lse=True)


@pytest.mark.parametrize("softcap", [2.0, 5.0])
def test_softcap_applies_before_bias_mask(rng, softcap, attend):
    b, h, lq, lk, d = 2, 2, 5, 7, 8
    q, k, v = qkv(rng, b, h, h, lq, lk, d)
    q *= 3.0  # scores of several units, so the tanh cap bites
    bias = 2.0 * randn(rng, b, 1, lq, lk)
    bias[~random_keep(rng, bias.shape)] = -np.inf
    got = attend(q, k, v, ma.bias(bias), softcap=softcap, need_weights=True, return_lse=True)
    expected = attention_f64(q, k, v, bias, softcap=softcap)
    assert_matches_oracle(got, expected, weights=True, lse=True)

    # The order matters: capping (scores + bias) instead would be visibly different,
    # so the comparison above does distinguish the two.
    qd, kd, vd = (torch.from_numpy(x).double() for x in (q, k, v))
    s = qd @ kd.transpose(-1, -2) / math.sqrt(d) + torch.from_numpy(bias).double()
    capped_after = torch.softmax(softcap * torch.tanh(s / softcap), dim=-1) @ vd
    assert np.abs(capped_after.numpy() - expected[0]).max() > 100 * OUT_ATOL


@pytest.mark.parametrize(
    "need_weights,return_lse", [(False, False), (True, False), (False, True), (True, True)]
)
def test_return_forms_and_shapes(rng, need_weights, return_lse, attend):
    b, hq, hkv, lq, lk, d, dv = 2, 4, 2, 3, 5, 6, 7
    q, k, v = qkv(rng, b, hq, hkv, lq, lk, d, dv)
    keep = random_keep(rng, (lq, lk))
    result = attend(
        q, k, v, ma.keep(keep), need_weights=need_weights, return_lse=return_lse
    )
    expected_out, expected_w, expected_lse = attention_f64(q, k, v, neg_inf_where_blocked(keep))
    if not need_weights and not return_lse:
        assert isinstance(result, np.ndarray)
        parts = [result]
    else:
        assert isinstance(result, tuple)
        assert len(result) == 1 + need_weights + return_lse
        parts = list(result)
    out = parts.pop(0)
    assert out.shape == (b, hq, lq, dv) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected_out, rtol=0, atol=OUT_ATOL)
    if need_weights:
        w = parts.pop(0)
        assert w.shape == (b, hq, lq, lk) and w.dtype == np.float32
        np.testing.assert_allclose(w, expected_w, rtol=0, atol=WEIGHTS_ATOL)
    if return_lse:
        lse = parts.pop(0)
        assert lse.shape == (b, hq, lq) and lse.dtype == np.float32
        np.testing.assert_allclose(lse, expected_lse, rtol=0, atol=LSE_ATOL)
    assert not parts


@pytest.mark.parametrize("d", [1, 24])
@pytest.mark.parametrize("lq,lk", [(1, 1), (1, 17), (3, 17), (17, 3), (17, 17)])
def test_odd_sizes_with_causal_mask(rng, lq, lk, d, attend):
    q, k, v = qkv(rng, 2, 3, 3, lq, lk, d)
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    allowed = j <= i  # top-left causal: key 0 is always visible
    got = attend(q, k, v, ma.causal(), need_weights=True, return_lse=True)
    expected = attention_f64(q, k, v, neg_inf_where_blocked(allowed))
    assert got[1].shape == (2, 3, lq, lk) and got[2].shape == (2, 3, lq)
    assert_matches_oracle(got, expected, weights=True, lse=True)


# --------------------------------------------------------------------------
# 3. Empty rows
# --------------------------------------------------------------------------

# B=3, Lq=4, Lk=5. key_lengths [5, 0, 2]: batch 1 sees no key (all rows empty);
# query_lengths [4, 4, 2]: batch 2 rows 2 and 3 are empty.
EB, EH, ELQ, ELK, ED = 3, 2, 4, 5, 8
KEY_LENS = [5, 0, 2]
QUERY_LENS = [4, 4, 2]


def empty_rows_case(rng):
    q, k, v = qkv(rng, EB, EH, EH, ELQ, ELK, ED)
    i = np.arange(ELQ)[None, :, None]
    j = np.arange(ELK)[None, None, :]
    allowed = (j < np.array(KEY_LENS)[:, None, None]) & (i < np.array(QUERY_LENS)[:, None, None])
    allowed = allowed[:, None]  # (B, 1, Lq, Lk)
    empty = ~allowed.any(axis=-1)  # (B, 1, Lq)
    empty = np.broadcast_to(empty, (EB, EH, ELQ))
    mask = ma.key_lengths(KEY_LENS) & ma.query_lengths(QUERY_LENS)
    return q, k, v, allowed, empty, mask


def test_empty_rows_zero(rng, attend):
    q, k, v, allowed, empty, mask = empty_rows_case(rng)
    assert empty.any() and not empty.all()
    out, w, lse = attend(q, k, v, mask, empty_rows="zero", need_weights=True, return_lse=True)
    assert np.all(out[empty] == 0) and np.all(w[empty] == 0)
    assert np.all(np.isneginf(lse[empty]))
    assert np.all(np.isfinite(lse[~empty]))
    # The oracle's convention for empty rows is the same, so compare everything.
    expected = attention_f64(q, k, v, neg_inf_where_blocked(allowed))
    assert_matches_oracle((out, w, lse), expected, weights=True, lse=True)


def test_empty_rows_nan_only_on_empty_rows(rng, attend):
    q, k, v, allowed, empty, mask = empty_rows_case(rng)
    out, w, lse = attend(q, k, v, mask, empty_rows="nan", need_weights=True, return_lse=True)
    assert np.all(np.isnan(out[empty])) and np.all(np.isnan(w[empty]))
    assert np.all(np.isneginf(lse[empty]))  # docs: lse is -inf for "nan" as well
    assert not np.isnan(out[~empty]).any() and not np.isnan(w[~empty]).any()
    e_out, e_w, e_lse = attention_f64(q, k, v, neg_inf_where_blocked(allowed))
    np.testing.assert_allclose(out[~empty], e_out[~empty], rtol=0, atol=OUT_ATOL)
    np.testing.assert_allclose(w[~empty], e_w[~empty], rtol=0, atol=WEIGHTS_ATOL)
    np.testing.assert_allclose(lse[~empty], e_lse[~empty], rtol=0, atol=LSE_ATOL)


@pytest.mark.parametrize(
    "mask_factory,first_empty",
    [
        (lambda: ma.key_lengths([5, 0, 2]), (1, 0, 0)),
        (lambda: ma.query_lengths([4, 4, 2]), (2, 0, 2)),
        (lambda: ma.key_lengths(KEY_LENS) & ma.query_lengths(QUERY_LENS), (1, 0, 0)),
    ],
    ids=["key_lengths", "query_lengths", "both"],
)
def test_empty_rows_error_names_the_row(rng, mask_factory, first_empty, attend):
    q, k, v = qkv(rng, EB, EH, EH, ELQ, ELK, ED)
    b, h, i = first_empty
    with pytest.raises(ValueError, match=re.escape(f"(b, h, i) = ({b}, {h}, {i})")):
        attend(q, k, v, mask_factory(), empty_rows="error")


def test_empty_rows_error_not_raised_without_empty_rows(rng, attend):
    q, k, v = qkv(rng, EB, EH, EH, ELQ, ELK, ED)
    out = attend(q, k, v, ma.key_lengths([5, 1, 2]), empty_rows="error")
    assert np.isfinite(out).all()


def test_fully_masked_row_pitfall_torch_nan_vs_maskattn_zero(rng, attend):
    """A bool row that is all False.

    The textbook formula softmax(scores.masked_fill(~keep, -inf)) and
    nn.MultiheadAttention give NaN on that row: the pitfall. (PyTorch's own
    SDPA stopped giving NaN in 2.5 -- it now zeroes such rows -- so with the
    pinned torch 2.15 it agrees with maskattn's default.) maskattn gives 0.
    """
    b, h, lq, lk, d = 1, 2, 4, 5, 8
    q, k, v = qkv(rng, b, h, h, lq, lk, d)
    keep = random_keep(rng, (lq, lk))
    keep[2] = False  # query 2 may attend to nothing
    tq, tk, tv, tkeep = (torch.from_numpy(x) for x in (q, k, v, keep))

    # The textbook formula.
    scores = (tq @ tk.transpose(-1, -2)) / math.sqrt(d)
    textbook = torch.softmax(scores.masked_fill(~tkeep, -math.inf), dim=-1) @ tv
    assert torch.isnan(textbook[:, :, 2]).all()
    assert not torch.isnan(textbook[:, :, [0, 1, 3]]).any()

    # nn.MultiheadAttention (self-attention, default training-mode module; bool
    # True = masked there).
    mha = torch.nn.MultiheadAttention(d, 2, batch_first=True)
    x = torch.from_numpy(randn(rng, 1, lq, d))
    mha_keep = random_keep(rng, (lq, lq))
    mha_keep[2] = False
    with torch.no_grad():
        mha_out = mha(x, x, x, attn_mask=torch.from_numpy(~mha_keep))[0]
    assert torch.isnan(mha_out[0, 2]).all()
    assert not torch.isnan(mha_out[0, [0, 1, 3]]).any()

    # torch SDPA (>= 2.5): zeros on the fully masked row.
    sdpa_out = sdpa(q, k, v, keep)
    assert np.all(sdpa_out[:, :, 2] == 0)

    out = attend(q, k, v, ma.from_sdpa_mask(keep))
    assert np.all(out[:, :, 2] == 0)
    np.testing.assert_allclose(out, sdpa_out, rtol=0, atol=OUT_ATOL)
    rows = [0, 1, 3]
    np.testing.assert_allclose(out[:, :, rows], textbook.numpy()[:, :, rows], rtol=0, atol=OUT_ATOL)


# --------------------------------------------------------------------------
# 4. Dropout
# --------------------------------------------------------------------------

P = 0.3


def dropout_case(rng):
    # 2 * 4 * 64 * 64 = 32768 weights: enough for a tight kept-fraction check.
    return qkv(rng, 2, 4, 2, 64, 64, 16)


def test_dropout_same_seed_is_bit_identical_other_seed_differs(rng, attend):
    q, k, v = dropout_case(rng)
    a_out, a_w = attend(q, k, v, ma.causal(), dropout_p=P, seed=7, need_weights=True)
    b_out, b_w = attend(q, k, v, ma.causal(), dropout_p=P, seed=7, need_weights=True)
    c_out, c_w = attend(q, k, v, ma.causal(), dropout_p=P, seed=8, need_weights=True)
    assert np.array_equal(a_out, b_out) and np.array_equal(a_w, b_w)
    assert not np.array_equal(a_out, c_out)
    # Different seeds draw different patterns, not just a few different bits.
    assert np.mean((a_w == 0) != (c_w == 0)) > 0.1


def test_dropout_weights_are_zero_or_scaled_no_dropout_weights(rng, attend):
    q, k, v = dropout_case(rng)
    _, w0 = attend(q, k, v, need_weights=True)
    out, w = attend(q, k, v, dropout_p=P, seed=1234, need_weights=True)
    assert np.all(w0 > 0)  # no underflow, so a 0 in w can only be a drop
    kept = w != 0
    # Every weight is either dropped (0) or the no-dropout weight / (1 - p).
    np.testing.assert_allclose(w[kept], w0[kept] / (1 - P), rtol=1e-5, atol=0)
    assert np.all(w[~kept] == 0)
    # The kept fraction is within 5 sigma of 1 - p.
    n = w.size
    sigma = math.sqrt(P * (1 - P) / n)
    assert abs(kept.mean() - (1 - P)) < 5 * sigma, (kept.mean(), 1 - P, sigma)
    # out is the dropped-out weights times v (GQA: kv head h // 2).
    v_rep = np.repeat(v.astype(np.float64), 2, axis=1)
    np.testing.assert_allclose(out, w.astype(np.float64) @ v_rep, rtol=0, atol=OUT_ATOL)


def test_dropout_p_zero_equals_no_dropout_exactly(rng, attend):
    q, k, v = dropout_case(rng)
    ref = attend(q, k, v, ma.causal(), need_weights=True, return_lse=True)
    got = attend(q, k, v, ma.causal(), dropout_p=0.0, seed=99, need_weights=True, return_lse=True)
    for a, b in zip(ref, got):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------
# 5. Layouts and inputs
# --------------------------------------------------------------------------


def run_all(q, k, v, attend):
    """out, weights and lse with a mask and GQA, for exact comparisons."""
    return attend(q, k, v, ma.causal("bottom_right"), need_weights=True, return_lse=True)


def assert_exactly_equal(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True)


def test_blhd_torch_buffer_viewed_as_bhld_equals_contiguous(rng, attend):
    b, hq, hkv, lq, lk, d = 2, 4, 2, 5, 7, 8
    # (B, L, H, D) buffers, viewed as (B, H, L, D) without a copy.
    q = torch.from_numpy(randn(rng, b, lq, hq, d)).transpose(1, 2)
    k = torch.from_numpy(randn(rng, b, lk, hkv, d)).transpose(1, 2)
    v = torch.from_numpy(randn(rng, b, lk, hkv, d)).transpose(1, 2)
    assert not q.is_contiguous()
    contiguous = [x.contiguous() for x in (q, k, v)]
    assert_exactly_equal(run_all(q, k, v, attend), run_all(*contiguous, attend))
    expected = sdpa(q.numpy(), k.numpy(), v.numpy(), enable_gqa=True)
    np.testing.assert_allclose(attend(q, k, v), expected, rtol=0, atol=OUT_ATOL)


def test_blhd_numpy_buffer_viewed_as_bhld_equals_contiguous(rng, attend):
    b, hq, hkv, lq, lk, d = 2, 4, 2, 5, 7, 8
    q = randn(rng, b, lq, hq, d).transpose(0, 2, 1, 3)
    k = randn(rng, b, lk, hkv, d).transpose(0, 2, 1, 3)
    v = randn(rng, b, lk, hkv, d).transpose(0, 2, 1, 3)
    assert not q.flags.c_contiguous
    contiguous = [np.ascontiguousarray(x) for x in (q, k, v)]
    assert_exactly_equal(run_all(q, k, v, attend), run_all(*contiguous, attend))


@pytest.mark.parametrize(
    "view",
    [lambda x: x[:, :, ::-1], lambda x: x[..., ::2], lambda x: x[:, ::-1, :, ::-2]],
    ids=["negative_stride_L", "strided_last_dim", "negative_strided_H_and_D"],
)
def test_numpy_strided_views_equal_contiguous_copies(rng, view, attend):
    b, hq, hkv, lq, lk, d = 2, 4, 2, 5, 7, 16
    q, k, v = (view(x) for x in qkv(rng, b, hq, hkv, lq, lk, d))
    assert not q.flags.c_contiguous
    contiguous = [np.ascontiguousarray(x) for x in (q, k, v)]
    assert_exactly_equal(run_all(q, k, v, attend), run_all(*contiguous, attend))


def test_torch_requires_grad_tensor_is_accepted(rng, attend):
    q, k, v = qkv(rng, 2, 2, 2, 4, 6, 8)
    tq, tk, tv = (torch.from_numpy(x.copy()).requires_grad_() for x in (q, k, v))
    out = attend(tq, tk, tv, ma.causal())
    assert np.array_equal(out, attend(q, k, v, ma.causal()))
    assert tq.requires_grad and tq.grad is None


def test_result_is_numpy_float32_of_shape_b_hq_lq_dv(rng, attend):
    b, hq, hkv, lq, lk, d, dv = 2, 6, 3, 4, 9, 8, 5
    for kind in INPUT_KINDS:
        out = attend(*as_kind(kind, *qkv(rng, b, hq, hkv, lq, lk, d, dv)))
        assert type(out) is np.ndarray
        assert out.dtype == np.float32
        assert out.shape == (b, hq, lq, dv)


def test_inputs_are_not_modified(rng, attend):
    q, k, v = qkv(rng, 2, 4, 2, 5, 7, 8)
    head_mask = np.array([1.0, 0.5, 0.0, 2.0], dtype=np.float32)
    bias = randn(rng, 5, 7)
    saved = [x.copy() for x in (q, k, v, head_mask, bias)]
    attend(q, k, v, ma.bias(bias) & ma.causal(), head_mask=head_mask, softcap=3.0,
                 dropout_p=0.2, seed=3, need_weights=True, return_lse=True)
    for x, y in zip((q, k, v, head_mask, bias), saved):
        assert np.array_equal(x, y)
    tq, tk, tv = (torch.from_numpy(x.copy()) for x in saved[:3])
    tsaved = [t.clone() for t in (tq, tk, tv)]
    attend(tq, tk, tv, ma.causal(), dropout_p=0.2, seed=3, need_weights=True)
    for x, y in zip((tq, tk, tv), tsaved):
        assert torch.equal(x, y)


# --------------------------------------------------------------------------
# 6. GQA with a bottom-right causal mask, against the oracle
# --------------------------------------------------------------------------


@pytest.mark.parametrize("hkv", [3, 1], ids=["gqa", "mqa"])
@pytest.mark.parametrize("lq,lk", [(5, 9), (9, 5), (1, 9)])
def test_gqa_bottom_right_causal_against_oracle(rng, hkv, lq, lk, attend):
    q, k, v = qkv(rng, 2, 6, hkv, lq, lk, 8)
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    allowed = j <= i + (lk - lq)  # the last query lines up with the last key
    got = attend(q, k, v, ma.causal("bottom_right"), need_weights=True, return_lse=True)
    expected = attention_f64(q, k, v, neg_inf_where_blocked(allowed))
    # With Lq > Lk the first Lq - Lk rows are empty: out/weights 0, lse -inf.
    assert_matches_oracle(got, expected, weights=True, lse=True)
    assert np.array_equal(np.isneginf(got[2]), np.isneginf(expected[2]))


# --------------------------------------------------------------------------
# 7. Past one tile: sizes the flash backend splits into many tiles (and tiles
#    the mask makes empty, full or partial), against SDPA with the same mask
#    written as a bool "may attend" array
# --------------------------------------------------------------------------

TB, TH, TL, TD = 2, 4, 333, 64  # 333: no tile size divides it
TILE_KEY_LENS = [TL, 150]
TILE_DOCS = [0] * 100 + [1] * 133 + [2] * 100


def tile_case_keep(name: str) -> np.ndarray | None:
    """The rule of each mask below, as a bool (B, 1, L, L) 'may attend' array."""
    i, j = np.arange(TL)[:, None], np.arange(TL)[None, :]
    if name == "none":
        return None
    if name == "causal":
        return np.broadcast_to(j <= i, (TB, 1, TL, TL))
    if name == "key_padding":
        return np.broadcast_to(j < np.array(TILE_KEY_LENS)[:, None, None, None], (TB, 1, TL, TL))
    if name == "sliding_window_64":
        return np.broadcast_to((j <= i) & (j >= i - 64), (TB, 1, TL, TL))
    if name == "documents":
        docs = np.array(TILE_DOCS)
        return np.broadcast_to(docs[:, None] == docs[None, :], (TB, 1, TL, TL))
    raise AssertionError(name)


TILE_MASKS = {
    "none": lambda: None,
    "causal": ma.causal,
    "key_padding": lambda: ma.key_lengths(TILE_KEY_LENS),
    "sliding_window_64": lambda: ma.sliding_window(64, 0),
    "documents": lambda: ma.documents(TILE_DOCS),
}


@pytest.mark.parametrize("name", list(TILE_MASKS))
def test_many_tiles_against_sdpa(rng, name, attend):
    q, k, v = qkv(rng, TB, TH, TH, TL, TL, TD)
    keep = tile_case_keep(name)
    out = attend(q, k, v, TILE_MASKS[name]())
    np.testing.assert_allclose(out, sdpa(q, k, v, keep), rtol=0, atol=OUT_ATOL)


def test_many_tiles_weights_and_lse_against_oracle(rng, attend):
    q, k, v = qkv(rng, TB, TH, 2, TL, TL, TD)
    mask = ma.causal() & ma.key_lengths(TILE_KEY_LENS)
    allowed = tile_case_keep("causal") & tile_case_keep("key_padding")
    got = attend(q, k, v, mask, need_weights=True, return_lse=True)
    assert_matches_oracle(got, attention_f64(q, k, v, neg_inf_where_blocked(allowed)),
                          weights=True, lse=True)


@pytest.mark.parametrize("lq", [1, 4])
def test_decode_rows_gqa_key_padding_against_sdpa(rng, lq, attend):
    # A few queries against a long KV cache: the decoding shape (flash's row path).
    b, hq, hkv, lk, d = 2, 8, 2, 1500, 128
    lens = [lk, 700]
    q, k, v = qkv(rng, b, hq, hkv, lq, lk, d)
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    keep = (j <= i + (lk - lq)) & (j < np.array(lens)[:, None, None, None])  # (B, 1, Lq, Lk)
    out = attend(q, k, v, ma.causal("bottom_right") & ma.key_lengths(lens))
    expected = sdpa(q, k, v, keep, enable_gqa=True)
    np.testing.assert_allclose(out, expected, rtol=0, atol=OUT_ATOL)


def test_auto_runs_flash_and_the_backend_reaches_the_library(rng):
    q, k, v = qkv(rng, 1, 4, 2, 300, 300, 64)
    auto = ma.attention(q, k, v, ma.causal())
    assert np.array_equal(auto, ma.attention(q, k, v, ma.causal(), backend="flash"))
    # The backends add in different orders, so their last bits differ: the
    # backend= of the tests above does choose the path.
    reference = ma.attention(q, k, v, ma.causal(), backend="reference")
    assert not np.array_equal(auto, reference)
    np.testing.assert_allclose(auto, reference, rtol=0, atol=OUT_ATOL)
