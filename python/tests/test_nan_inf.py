"""NaN and Inf through Python: propagated only where they flow, never invented.

What it proves, against oracles written here (torch float64 for attention,
numpy for the modules):
  * attention, both backends: a NaN (or +-inf) in q row i gives NaN in row i's
    out, weights and lse only; a NaN or infinite key j gives NaN exactly in
    the rows whose mask lets them attend j, and every other row equals the
    float64 oracle (within conftest's OUT_ATOL / WEIGHTS_ATOL / LSE_ATOL);
    weights the mask forbids are exactly 0 even in a NaN row.
  * a NaN value at a hidden key: reference keeps it out of the rows that hide
    the key; flash keeps it out of rows whose tiles skip the key, and may
    carry it (0 * NaN in p @ v, as torch's kernels do) into a row that hides
    it from within a tile it partly sees -- asserted as it is (docs/python.md).
  * finite inputs never give NaN: scores of +-1e4, -inf biases next to finite
    ones, fully masked rows (zeros, lse -inf) on both backends.
  * modules: Linear / LayerNorm with one NaN token give NaN in that token's
    output only; cross_entropy's NaN logits count only in rows not ignored.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import maskattn as ma
from conftest import LSE_ATOL, OUT_ATOL, WEIGHTS_ATOL, attention_f64, neg_inf_where_blocked

L, S, D = 40, 70, 8
KEY = 50  # seen by rows i >= 20 under MASK (bottom-right causal: j <= i + 30; j < 60)
MASK = ma.causal("bottom_right") & ma.key_lengths([60])


def _allowed() -> np.ndarray:
    i = np.arange(L)[:, None]
    j = np.arange(S)[None, :]
    return (j <= i + (S - L)) & (j < 60)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(np.float32)
                 for s in ((1, 1, L, D), (1, 1, S, D), (1, 1, S, D)))


def _without_key(x):
    """x with KEY's row zeroed: what the oracle reads for rows that hide KEY."""
    x = x.copy()
    x[0, 0, KEY] = 0.0
    return x


def _hiding_key(allowed):
    out = allowed.copy()
    out[:, KEY] = False
    return out


def _attend(q, k, v, backend):
    return ma.attention(q, k, v, MASK, need_weights=True, return_lse=True, backend=backend)


def _expect_rows(got, want, nan_rows, atol, what):
    """NaN exactly in nan_rows (axis 2); elsewhere the oracle within atol."""
    got_nan = np.isnan(got).reshape(got.shape[2], -1).any(axis=1)
    np.testing.assert_array_equal(np.flatnonzero(got_nan), np.flatnonzero(nan_rows), err_msg=what)
    keep = ~nan_rows
    np.testing.assert_allclose(got[0, 0][keep], want[0, 0][keep], rtol=0, atol=atol, err_msg=what)


@pytest.mark.parametrize("backend", ["reference", "flash"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_query_poisons_its_own_row_only(backend, bad):
    q, k, v = _inputs()
    q[0, 0, 20, 3] = bad
    out, w, lse = _attend(q, k, v, backend)
    clean = q.copy()
    clean[0, 0, 20] = 0.0
    ref_out, ref_w, ref_lse = attention_f64(clean, k, v, neg_inf_where_blocked(_allowed()))
    rows = np.zeros(L, bool)
    rows[20] = True
    _expect_rows(out, ref_out, rows, OUT_ATOL, "out")
    _expect_rows(w, ref_w, rows, WEIGHTS_ATOL, "weights")
    assert np.isnan(lse[0, 0, 20]) and np.isfinite(lse[0, 0, ~rows]).all()
    np.testing.assert_allclose(lse[0, 0, ~rows], ref_lse[0, 0, ~rows], rtol=0, atol=LSE_ATOL)
    # A forbidden weight is 0, even in the NaN row.
    assert (w[0, 0, 20][~_allowed()[20]] == 0).all()


@pytest.mark.parametrize("backend", ["reference", "flash"])
def test_a_nan_key_reaches_exactly_the_rows_that_may_attend_it(backend):
    q, k, v = _inputs(1)
    k[0, 0, KEY, 3] = math.nan
    out, w, lse = _attend(q, k, v, backend)
    allowed = _allowed()
    # The oracle without the key: rows that hide it must equal it.
    ref_out, ref_w, ref_lse = attention_f64(q, _without_key(k), v,
                                            neg_inf_where_blocked(_hiding_key(allowed)))
    sees = allowed[:, KEY]
    _expect_rows(out, ref_out, sees, OUT_ATOL, "out")
    _expect_rows(w, ref_w, sees, WEIGHTS_ATOL, "weights")
    assert np.isnan(lse[0, 0, sees]).all()
    np.testing.assert_allclose(lse[0, 0, ~sees], ref_lse[0, 0, ~sees], rtol=0, atol=LSE_ATOL)
    assert (w[0, 0][~allowed] == 0).all()  # forbidden weights are 0 in every row


@pytest.mark.parametrize("backend", ["reference", "flash"])
def test_an_infinite_key_is_inf_minus_inf_where_seen_and_nothing_where_hidden(backend):
    q, k, v = _inputs(2)
    k[0, 0, KEY, 3] = math.inf
    out, w, lse = _attend(q, k, v, backend)
    allowed = _allowed()
    # Rows that see it score q[i, 3] * inf: +inf (NaN after softmax's inf - inf)
    # where q[i, 3] > 0, -inf (a weight of 0) where q[i, 3] < 0.
    nan_rows = allowed[:, KEY] & (q[0, 0, :, 3] > 0)
    # Every other row gives KEY a weight of 0: the oracle hides it.
    ref_out, ref_w, _ = attention_f64(q, _without_key(k), v,
                                      neg_inf_where_blocked(_hiding_key(allowed)))
    _expect_rows(out, ref_out, nan_rows, OUT_ATOL, "out")
    _expect_rows(w, ref_w, nan_rows, WEIGHTS_ATOL, "weights")
    assert np.isfinite(lse[0, 0, ~nan_rows]).all()


def test_a_nan_value_at_a_hidden_key_reference_keeps_it_out():
    q, k, v = _inputs(3)
    v[0, 0, KEY, 5] = math.nan
    out = ma.attention(q, k, v, MASK, backend="reference")
    sees = _allowed()[:, KEY]
    assert np.isnan(out[0, 0, sees, 5]).all()
    assert np.isfinite(out[0, 0, ~sees]).all()
    ref_out, _, _ = attention_f64(q, k, _without_key(v), neg_inf_where_blocked(_allowed()))
    np.testing.assert_allclose(out[0, 0, ~sees], ref_out[0, 0, ~sees], rtol=0, atol=OUT_ATOL)


def test_a_nan_value_at_a_hidden_key_flash_keeps_it_out_of_skipped_tiles():
    # Flash multiplies a partial tile's zero weights by its values (0 * NaN =
    # NaN, as torch's kernels do); a tile the mask hides entirely is never
    # read. Value 65 is hidden from every row (key_lengths 60).
    q, k, v = _inputs(3)
    v[0, 0, 65, 5] = math.nan
    clean = v.copy()
    clean[0, 0, 65] = 0.0
    ref_out, _, _ = attention_f64(q, k, clean, neg_inf_where_blocked(_allowed()))
    out = ma.attention(q, k, v, MASK, backend="flash")
    finite = np.isfinite(out[0, 0]).all(axis=1)
    # Where NaN came in, it is in column 5 alone (the value's own column) ...
    assert np.isnan(out[0, 0, ~finite, 5]).all()
    others = np.delete(np.arange(D), 5)
    assert np.isfinite(out[0, 0][:, others]).all()
    # ... and every finite row, and the other columns of every row, are right.
    np.testing.assert_allclose(out[0, 0, finite], ref_out[0, 0, finite], rtol=0, atol=OUT_ATOL)
    np.testing.assert_allclose(out[0, 0][:, others], ref_out[0, 0][:, others], rtol=0,
                               atol=OUT_ATOL)


@pytest.mark.parametrize("backend", ["reference", "flash"])
def test_finite_inputs_never_give_nan(backend):
    rng = np.random.default_rng(4)
    q = (rng.standard_normal((2, 2, L, D)) * 100).astype(np.float32)  # scores up to ~1e4
    k = (rng.standard_normal((2, 2, S, D)) * 100).astype(np.float32)
    v = rng.standard_normal((2, 2, S, D)).astype(np.float32)
    b = np.where(rng.random((L, S)) < 0.3, -np.inf, rng.standard_normal((L, S))).astype(np.float32)
    b[7] = -np.inf  # a fully masked row
    mask = ma.bias(b) & ma.key_lengths([S, 0])  # batch 1: every row empty
    out, w, lse = ma.attention(q, k, v, mask, need_weights=True, return_lse=True, backend=backend)
    assert not np.isnan(out).any() and not np.isnan(w).any() and not np.isnan(lse).any()
    additive = np.stack([b, np.full((L, S), -np.inf, np.float32)])[:, None]
    ref_out, ref_w, ref_lse = attention_f64(q, k, v, additive)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=OUT_ATOL)
    np.testing.assert_allclose(w, ref_w, rtol=0, atol=WEIGHTS_ATOL)
    assert (out[:, :, 7] == 0).all() and np.isneginf(lse[:, :, 7]).all() and (out[1] == 0).all()


def test_linear_and_layer_norm_keep_a_nan_token_to_itself():
    x = np.random.default_rng(5).standard_normal((2, 3, 4)).astype(np.float32)
    x[1, 2, 0] = math.nan
    lin, norm = ma.Linear(4, 5), ma.LayerNorm(4)
    sd = lin.state_dict()
    for module, want in (
        (lin, np.nan_to_num(x) @ sd["weight"].T + sd["bias"]),
        (norm, (np.nan_to_num(x) - np.nan_to_num(x).mean(-1, keepdims=True))
         / np.sqrt(np.nan_to_num(x).var(-1, keepdims=True) + 1e-5)),
    ):
        y = module(x)
        assert np.isnan(y[1, 2]).all()
        token = np.ones((2, 3), bool)
        token[1, 2] = False
        assert np.isfinite(y[token]).all()
        np.testing.assert_allclose(y[token], want[token], rtol=1e-5, atol=1e-5)


def test_cross_entropy_counts_nan_only_in_rows_it_counts():
    logits = np.random.default_rng(6).standard_normal((3, 4)).astype(np.float32)
    logits[1, 2] = math.nan
    targets = np.array([0, -100, 3])
    loss, grad = ma.cross_entropy(logits, targets)
    want = torch.nn.functional.cross_entropy(
        torch.from_numpy(np.delete(logits, 1, 0)).double(), torch.tensor([0, 3])).item()
    assert loss == pytest.approx(want, rel=1e-6)
    assert np.isfinite(grad).all() and (grad[1] == 0).all()
    loss_counted, _ = ma.cross_entropy(logits, np.array([0, 1, 3]))
    assert math.isnan(loss_counted)
