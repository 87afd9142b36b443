"""Every mask part of the Python module, and their combinations, against rules
written here in numpy.

Each check goes two ways:
  * `Mask.materialize(B, H, Lq, Lk)` must be float32 (B, H, Lq, Lk) with -inf
    exactly where the rule masks, and 0 (or the rule's bias, 1e-6 relative)
    where it allows;
  * `ma.attention(q, k, v, mask, need_weights=True)` must match the float64
    oracle `attention_f64` of conftest run with the rule's dense additive mask
    (OUT_ATOL, WEIGHTS_ATOL). Rows the rule leaves empty are zeros there.

The expected masks are built from index arithmetic, numpy/torch arrays and the
ALiBi paper's reference `get_slopes`, never from maskattn's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import maskattn as ma
from conftest import OUT_ATOL, WEIGHTS_ATOL, attention_f64, randn

BIAS_RTOL = 1e-6
ALIGNS = ["top_left", "bottom_right"]
# (Lq, Lk): fewer, as many and more queries than keys.
LENGTHS = [(3, 5), (4, 4), (5, 3), (1, 6), (6, 1)]


# ---- the rules ---------------------------------------------------------------


def indices(B: int, H: int, Lq: int, Lk: int):
    """b, h, i, j as broadcastable int64 arrays over (B, H, Lq, Lk)."""
    return np.ix_(np.arange(B), np.arange(H), np.arange(Lq), np.arange(Lk))


def full(x, shape) -> np.ndarray:
    return np.array(np.broadcast_to(x, shape))


def offset(align: str, Lq: int, Lk: int) -> int:
    """Causal alignment: 0 top-left, Lk - Lq bottom-right."""
    return 0 if align == "top_left" else Lk - Lq


def rule_causal(align, B, H, Lq, Lk):
    b, h, i, j = indices(B, H, Lq, Lk)
    return full(j <= i + offset(align, Lq, Lk), (B, H, Lq, Lk))


def rule_sliding_window(left, right, align, B, H, Lq, Lk):
    b, h, i, j = indices(B, H, Lq, Lk)
    ii = i + offset(align, Lq, Lk)
    ok = np.ones((B, H, Lq, Lk), dtype=bool)
    if left is not None:
        ok &= j >= ii - left
    if right is not None:
        ok &= j <= ii + right
    return ok


def rule_prefix_lm(n, align, B, H, Lq, Lk):
    b, h, i, j = indices(B, H, Lq, Lk)
    return full((j < n) | (j <= i + offset(align, Lq, Lk)), (B, H, Lq, Lk))


def rule_documents(q_ids, k_ids, B, H, Lq, Lk):
    """ids (L,) shared or (B, L) per batch element; equal id = may attend."""
    q = np.asarray(q_ids).reshape(-1, 1, Lq, 1) if np.ndim(q_ids) == 2 else np.asarray(q_ids).reshape(1, 1, Lq, 1)
    k = np.asarray(k_ids).reshape(-1, 1, 1, Lk) if np.ndim(k_ids) == 2 else np.asarray(k_ids).reshape(1, 1, 1, Lk)
    return full(q == k, (B, H, Lq, Lk))


def rule_key_lengths(lengths, B, H, Lq, Lk):
    b, h, i, j = indices(B, H, Lq, Lk)
    return full(j < np.asarray(lengths).reshape(B, 1, 1, 1), (B, H, Lq, Lk))


def rule_query_lengths(lengths, B, H, Lq, Lk):
    b, h, i, j = indices(B, H, Lq, Lk)
    return full(i < np.asarray(lengths).reshape(B, 1, 1, 1), (B, H, Lq, Lk))


def rule_alibi(slopes, align, B, H, Lq, Lk):
    b, h, i, j = indices(B, H, Lq, Lk)
    s = np.asarray(slopes, dtype=np.float32).astype(np.float64).reshape(1, H, 1, 1)
    return full(-s * np.abs(i + offset(align, Lq, Lk) - j), (B, H, Lq, Lk))


def dense_to_4d(a: np.ndarray, B, H, Lq, Lk, key_padding=False) -> np.ndarray:
    """PyTorch-style reading of a dense mask (docs/masks.md, Broadcasting):
    (S), (L, S), (B, S) with key_padding, (X, L, S) with X = B*H, else B, else 1,
    and (B, H, L, S); any size-1 dim broadcasts."""
    a = np.asarray(a)
    if key_padding:
        a = a.reshape(a.shape[0], 1, 1, a.shape[1])
    elif a.ndim == 3:
        if a.shape[0] == B * H and B * H != 1:
            a = a.reshape(B, H, a.shape[1], a.shape[2])
        else:
            a = a[:, None]
    return full(a, (B, H, Lq, Lk))


def get_slopes(n: int) -> list[float]:
    """The ALiBi paper's reference code (ofirpress/attention_with_linear_biases)."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (
        get_slopes_power_of_2(closest_power_of_2)
        + get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]
    )


# ---- the checks --------------------------------------------------------------


def check_materialize(mask: ma.Mask, shape, allowed: np.ndarray, bias: np.ndarray | None = None):
    B, H, Lq, Lk = shape
    got = mask.materialize(B, H, Lq, Lk)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float32
    assert got.shape == (B, H, Lq, Lk)
    allowed = np.broadcast_to(allowed, shape)
    np.testing.assert_array_equal(np.isneginf(got), ~allowed, err_msg=f"masked pairs of {mask!r}")
    assert np.isfinite(got[allowed]).all()
    if bias is None:
        np.testing.assert_array_equal(got[allowed], 0.0)
    else:
        bias = np.broadcast_to(bias, shape)
        np.testing.assert_allclose(got[allowed], bias[allowed], rtol=BIAS_RTOL, atol=0)


def check_attention(mask: ma.Mask, shape, allowed, bias=None, *, rng, D: int = 4):
    B, H, Lq, Lk = shape
    q, k, v = randn(rng, B, H, Lq, D), randn(rng, B, H, Lk, D), randn(rng, B, H, Lk, D)
    dense = np.where(np.broadcast_to(allowed, shape), 0.0 if bias is None else bias, -np.inf)
    out, weights = ma.attention(q, k, v, mask, need_weights=True)
    ref_out, ref_w, _ = attention_f64(q, k, v, dense)
    np.testing.assert_allclose(weights, ref_w, rtol=0, atol=WEIGHTS_ATOL)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=OUT_ATOL)


def check(mask, shape, allowed, bias=None, *, rng):
    check_materialize(mask, shape, allowed, bias)
    check_attention(mask, shape, allowed, bias, rng=rng)


# ---- causal ------------------------------------------------------------------


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("Lq,Lk", LENGTHS)
def test_causal_allows_j_at_most_i_plus_offset(align, Lq, Lk, rng):
    shape = (2, 2, Lq, Lk)
    check(ma.causal(align), shape, rule_causal(align, *shape), rng=rng)


def test_causal_default_is_top_left(rng):
    shape = (1, 1, 3, 5)
    check(ma.causal(), shape, rule_causal("top_left", *shape), rng=rng)


def test_causal_bottom_right_with_more_queries_than_keys_gives_zero_rows(rng):
    # Lq = 4, Lk = 2 bottom-right: offset -2, rows 0 and 1 see no key.
    B, H, Lq, Lk, D = 1, 2, 4, 2, 3
    q, k, v = randn(rng, B, H, Lq, D), randn(rng, B, H, Lk, D), randn(rng, B, H, Lk, D)
    out, weights = ma.attention(q, k, v, ma.causal("bottom_right"), need_weights=True)
    np.testing.assert_array_equal(out[:, :, :2], 0.0)
    np.testing.assert_array_equal(weights[:, :, :2], 0.0)
    np.testing.assert_allclose(weights[:, :, 2, 0], 1.0, atol=WEIGHTS_ATOL)
    np.testing.assert_allclose(weights[:, :, 3].sum(-1), 1.0, atol=WEIGHTS_ATOL)


# ---- sliding window ----------------------------------------------------------

WINDOWS = [(0, 0), (1, 0), (2, 1), (0, 2), (None, 0), (None, 2), (1, None), (0, None), (None, None)]


@pytest.mark.parametrize("left,right", WINDOWS)
@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("Lq,Lk", [(3, 6), (5, 5), (6, 3)])
def test_sliding_window_allows_the_band(left, right, align, Lq, Lk, rng):
    shape = (1, 2, Lq, Lk)
    mask = ma.sliding_window(left, right, align)
    check(mask, shape, rule_sliding_window(left, right, align, *shape), rng=rng)


def test_sliding_window_right_defaults_to_zero(rng):
    shape = (1, 1, 6, 6)
    check(ma.sliding_window(2), shape, rule_sliding_window(2, 0, "top_left", *shape), rng=rng)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("Lq,Lk", LENGTHS)
def test_sliding_window_unbounded_left_equals_causal(align, Lq, Lk):
    got = ma.sliding_window(None, 0, align).materialize(2, 1, Lq, Lk)
    np.testing.assert_array_equal(got, ma.causal(align).materialize(2, 1, Lq, Lk))
    check_materialize(ma.sliding_window(None, 0, align), (2, 1, Lq, Lk), rule_causal(align, 2, 1, Lq, Lk))


# ---- prefix LM ---------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 3, 9])
@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("Lq,Lk", [(3, 6), (5, 5), (6, 3)])
def test_prefix_lm_allows_prefix_or_causal(n, align, Lq, Lk, rng):
    shape = (2, 1, Lq, Lk)
    check(ma.prefix_lm(n, align), shape, rule_prefix_lm(n, align, *shape), rng=rng)


# ---- documents ---------------------------------------------------------------

SHARED_IDS = {
    "sorted": [0, 0, 0, 1, 1, 2, 2, 2],
    "unsorted": [2, 0, 2, 1, 0, 1, 7, 2],
    "one_document": [5] * 8,
    "all_distinct": [3, 1, 4, 0, 2, 6, 5, 7],
}


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("kind", list(SHARED_IDS))
def test_documents_shared_ids_block_diagonal(kind, dtype, rng):
    ids = np.array(SHARED_IDS[kind], dtype=dtype)
    shape = (2, 2, 8, 8)
    check(ma.documents(ids), shape, rule_documents(ids, ids, *shape), rng=rng)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("sort", [True, False])
def test_documents_per_batch_ids(sort, dtype, rng):
    ids = np.random.default_rng(1).integers(0, 3, size=(3, 7)).astype(dtype)
    if sort:
        ids = np.sort(ids, axis=1)
    shape = (3, 2, 7, 7)
    check(ma.documents(ids), shape, rule_documents(ids, ids, *shape), rng=rng)


def test_documents_from_torch_and_list(rng):
    ids = [0, 0, 1, 1, 1, 2]
    shape = (1, 1, 6, 6)
    expected = rule_documents(ids, ids, *shape)
    check(ma.documents(ids), shape, expected, rng=rng)
    check(ma.documents(torch.tensor(ids)), shape, expected, rng=rng)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("Lq,Lk", [(3, 7), (7, 3)])
def test_documents_cross_attention_shared_ids(dtype, Lq, Lk, rng):
    g = np.random.default_rng(Lq * 10 + Lk)
    q_ids = g.integers(0, 3, size=Lq).astype(dtype)
    k_ids = g.integers(0, 3, size=Lk).astype(dtype)
    shape = (2, 2, Lq, Lk)
    check(ma.documents(q_ids, k_ids), shape, rule_documents(q_ids, k_ids, *shape), rng=rng)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("Lq,Lk", [(2, 5), (6, 4)])
def test_documents_cross_attention_per_batch_ids(dtype, Lq, Lk, rng):
    g = np.random.default_rng(Lq * 10 + Lk)
    q_ids = np.sort(g.integers(0, 3, size=(3, Lq)), axis=1).astype(dtype)
    k_ids = np.sort(g.integers(0, 3, size=(3, Lk)), axis=1).astype(dtype)
    shape = (3, 1, Lq, Lk)
    check(ma.documents(q_ids, k_ids), shape, rule_documents(q_ids, k_ids, *shape), rng=rng)


# ---- lengths -----------------------------------------------------------------

LENGTH_SOURCES = {
    "list": lambda x: list(x),
    "numpy_int32": lambda x: np.array(x, dtype=np.int32),
    "numpy_int64": lambda x: np.array(x, dtype=np.int64),
    "torch_int64": lambda x: torch.tensor(x, dtype=torch.int64),
    "torch_int32": lambda x: torch.tensor(x, dtype=torch.int32),
}


@pytest.mark.parametrize("source", list(LENGTH_SOURCES))
def test_key_lengths_hide_keys_at_or_past_length(source, rng):
    lengths = [5, 2, 0]  # 0: every row of batch element 2 is empty
    shape = (3, 2, 4, 5)
    mask = ma.key_lengths(LENGTH_SOURCES[source](lengths))
    check(mask, shape, rule_key_lengths(lengths, *shape), rng=rng)


@pytest.mark.parametrize("source", list(LENGTH_SOURCES))
def test_query_lengths_empty_rows_past_length(source, rng):
    lengths = [4, 1, 0]
    shape = (3, 2, 4, 5)
    mask = ma.query_lengths(LENGTH_SOURCES[source](lengths))
    check(mask, shape, rule_query_lengths(lengths, *shape), rng=rng)


# ---- dense keep / block / bias -----------------------------------------------

B_, H_, L_, S_ = 2, 3, 4, 5
# (array shape, key_padding)
DENSE_SHAPES = [
    ((S_,), False),
    ((L_, S_), False),
    ((1, S_), False),
    ((L_, 1), False),
    ((B_, S_), True),
    ((1, S_), True),
    ((B_, L_, S_), False),
    ((B_ * H_, L_, S_), False),
    ((1, L_, S_), False),
    ((B_, 1, S_), False),
    ((B_, H_, L_, S_), False),
    ((1, H_, 1, S_), False),
    ((B_, 1, L_, S_), False),
    ((1, 1, 1, 1), False),
]
DENSE_IDS = [f"{'x'.join(map(str, s))}{'_keypad' if kp else ''}" for s, kp in DENSE_SHAPES]


def random_bool(shape, seed):
    return np.random.default_rng(seed).random(shape) < 0.7


def random_bias(shape, seed, dtype):
    g = np.random.default_rng(seed)
    a = g.standard_normal(shape).astype(dtype)
    a[g.random(shape) < 0.25] = -np.inf
    return a


@pytest.mark.parametrize("source", ["numpy", "torch"])
@pytest.mark.parametrize("kind", ["keep", "block"])
@pytest.mark.parametrize("arr_shape,key_padding", DENSE_SHAPES, ids=DENSE_IDS)
def test_keep_and_block_broadcast(kind, source, arr_shape, key_padding, rng):
    shape = (B_, H_, L_, S_)
    a = random_bool(arr_shape, seed=len(arr_shape) * 7 + arr_shape[0])
    arg = torch.from_numpy(a) if source == "torch" else a
    fn = ma.keep if kind == "keep" else ma.block
    mask = fn(arg, key_padding=key_padding) if key_padding else fn(arg)
    a4 = dense_to_4d(a, *shape, key_padding=key_padding)
    allowed = a4 if kind == "keep" else ~a4  # keep: True = may attend; block: True = masked
    check(mask, shape, allowed, rng=rng)


@pytest.mark.parametrize("source", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("arr_shape,key_padding", DENSE_SHAPES, ids=DENSE_IDS)
def test_bias_broadcast(dtype, source, arr_shape, key_padding, rng):
    shape = (B_, H_, L_, S_)
    a = random_bias(arr_shape, seed=len(arr_shape) * 7 + arr_shape[0], dtype=dtype)
    arg = torch.from_numpy(a) if source == "torch" else a
    mask = ma.bias(arg, key_padding=True) if key_padding else ma.bias(arg)
    a4 = dense_to_4d(a, *shape, key_padding=key_padding).astype(np.float64)
    allowed = ~np.isneginf(a4)
    check(mask, shape, allowed, np.where(allowed, a4, 0.0), rng=rng)


def test_three_dim_mask_with_h_one_reads_first_dim_as_batch(rng):
    # H = 1: B*H == B, both readings agree.
    shape = (3, 1, 4, 4)
    a = random_bool((3, 4, 4), seed=5)
    check(ma.keep(a), shape, a[:, None], rng=rng)


# ---- ALiBi -------------------------------------------------------------------


@pytest.mark.parametrize("H", [1, 2, 4, 8, 16, 32])
def test_alibi_slopes_power_of_two_heads(H):
    got = ma.alibi_slopes(H)
    assert got.dtype == np.float32 and got.shape == (H,)
    expected = 2.0 ** (-8.0 * np.arange(1, H + 1) / H)
    np.testing.assert_allclose(got, expected, rtol=BIAS_RTOL, atol=0)


def test_alibi_slopes_eight_heads_exact():
    np.testing.assert_array_equal(ma.alibi_slopes(8), np.float32(2.0) ** -np.arange(1, 9, dtype=np.float32))


@pytest.mark.parametrize("H", [1, 2, 3, 5, 6, 7, 8, 12, 16, 20, 24])
def test_alibi_slopes_match_paper_reference(H):
    got = ma.alibi_slopes(H)
    assert got.dtype == np.float32 and got.shape == (H,)
    np.testing.assert_allclose(got, np.array(get_slopes(H)), rtol=BIAS_RTOL, atol=0)


@pytest.mark.parametrize("slopes_kind", ["paper", "list", "torch"])
@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("Lq,Lk", [(3, 6), (5, 5), (6, 3)])
def test_alibi_bias_is_minus_slope_times_distance(slopes_kind, align, Lq, Lk, rng):
    H = 3
    slopes = {
        "paper": np.array(get_slopes(H), dtype=np.float32),
        "list": [0.5, 1.25, 0.0],
        "torch": torch.tensor([0.75, 0.125, 2.0]),
    }[slopes_kind]
    s = np.asarray(slopes, dtype=np.float32)
    shape = (2, H, Lq, Lk)
    allowed = np.ones(shape, dtype=bool)  # ALiBi masks nothing
    check(ma.alibi(slopes, align), shape, allowed, rule_alibi(s, align, *shape), rng=rng)


def test_alibi_default_align_is_top_left():
    shape = (1, 2, 2, 5)
    s = ma.alibi_slopes(2)
    check_materialize(ma.alibi(s), shape, np.ones(shape, bool), rule_alibi(s, "top_left", *shape))


# ---- predicate ---------------------------------------------------------------

PREDICATES = {
    "diagonal_stripes": lambda b, h, i, j: (i + j + b + h) % 3 != 0,
    "per_head_window": lambda b, h, i, j: abs(i - j) <= h,
    "batch_dependent": lambda b, h, i, j: j >= b,
    "nothing": lambda b, h, i, j: False,
}


@pytest.mark.parametrize("name", list(PREDICATES))
@pytest.mark.parametrize("Lq,Lk", [(4, 6), (5, 3)])
def test_predicate_follows_python_rule(name, Lq, Lk, rng):
    fn = PREDICATES[name]
    shape = (2, 3, Lq, Lk)
    allowed = np.array(
        [[[[bool(fn(b, h, i, j)) for j in range(Lk)] for i in range(Lq)] for h in range(3)] for b in range(2)]
    )
    check(ma.predicate(fn), shape, allowed, rng=rng)


def test_predicate_name_appears_in_describe():
    assert "my_rule" in ma.predicate(lambda b, h, i, j: True, "my_rule").describe()


# ---- subsequent_mask ---------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_subsequent_mask_is_lower_triangle(n):
    got = ma.subsequent_mask(n)
    assert got.dtype == np.bool_ and got.shape == (1, n, n)
    np.testing.assert_array_equal(got[0], np.tril(np.ones((n, n), dtype=bool)))


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("L", [1, 4, 7])
def test_keep_subsequent_mask_equals_causal(align, L, rng):
    shape = (2, 2, L, L)
    m = ma.keep(ma.subsequent_mask(L))
    np.testing.assert_array_equal(m.materialize(*shape), ma.causal(align).materialize(*shape))
    check(m, shape, rule_causal(align, *shape), rng=rng)


# ---- combinations ------------------------------------------------------------


def test_causal_and_key_lengths_is_the_padded_decoder(rng):
    lengths = [5, 3, 1]
    shape = (3, 2, 5, 5)
    mask = ma.causal() & ma.key_lengths(lengths)
    expected = rule_causal("top_left", *shape) & rule_key_lengths(lengths, *shape)
    check(mask, shape, expected, rng=rng)


@pytest.mark.parametrize("align", ALIGNS)
def test_causal_and_documents(align, rng):
    ids = np.array([[0, 0, 0, 1, 1, 2], [3, 3, 4, 4, 4, 4]], dtype=np.int64)
    shape = (2, 2, 6, 6)
    mask = ma.causal(align) & ma.documents(ids)
    check(mask, shape, rule_causal(align, *shape) & rule_documents(ids, ids, *shape), rng=rng)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("Lq,Lk", [(4, 6), (6, 4)])
def test_sliding_window_key_lengths_query_lengths(align, Lq, Lk, rng):
    kl, ql = [Lk, 2, 0], [Lq, 3, 2]
    shape = (3, 2, Lq, Lk)
    mask = ma.sliding_window(2, 1, align) & ma.key_lengths(kl) & ma.query_lengths(ql)
    expected = (
        rule_sliding_window(2, 1, align, *shape)
        & rule_key_lengths(kl, *shape)
        & rule_query_lengths(ql, *shape)
    )
    check(mask, shape, expected, rng=rng)


def test_bias_and_bias_add(rng):
    shape = (2, 3, 4, 5)
    a = random_bias((4, 5), seed=11, dtype=np.float32)
    c = random_bias((2, 3, 4, 5), seed=12, dtype=np.float64)
    # maskattn stores float32 biases; the rule adds the stored values.
    a4 = full(a.astype(np.float64), shape)
    c4 = c.astype(np.float32).astype(np.float64)
    allowed = ~np.isneginf(a4) & ~np.isneginf(c4)
    total = np.where(allowed, a4 + c4, 0.0)
    check(ma.bias(a) & ma.bias(c), shape, allowed, total, rng=rng)


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("Lq,Lk", [(3, 6), (5, 5), (6, 3)])
def test_alibi_and_causal(align, Lq, Lk, rng):
    H = 4
    s = ma.alibi_slopes(H)
    shape = (1, H, Lq, Lk)
    mask = ma.alibi(s, align) & ma.causal(align)
    check(mask, shape, rule_causal(align, *shape), rule_alibi(get_slopes(H), align, *shape), rng=rng)


def test_keep_and_block(rng):
    shape = (2, 2, 4, 5)
    k = random_bool((4, 5), seed=21)
    bl = random_bool((2, 1, 4, 5), seed=22)
    check(ma.keep(k) & ma.block(bl), shape, full(k, shape) & ~full(bl, shape), rng=rng)


def combination_parts():
    """Pairs of parts for the symmetry test, named."""
    return {
        "causal": ma.causal(),
        "bottom_right": ma.causal("bottom_right"),
        "key_lengths": ma.key_lengths([5, 2]),
        "query_lengths": ma.query_lengths([1, 4]),
        "documents": ma.documents([0, 0, 1, 1, 2]),
        "bias": ma.bias(random_bias((2, 1, 4, 5), seed=31, dtype=np.float32)),
        "bias2": ma.bias(random_bias((5,), seed=32, dtype=np.float64)),
        "alibi": ma.alibi([0.5, 0.25]),
        "keep": ma.keep(random_bool((4, 5), seed=33)),
        "block": ma.block(random_bool((2, 5), seed=34), key_padding=True),
        "window": ma.sliding_window(1, 2),
        "prefix": ma.prefix_lm(2),
        "predicate": ma.predicate(lambda b, h, i, j: (i * j + h) % 4 != 1),
    }


@pytest.mark.parametrize(
    "a,b",
    [
        ("causal", "key_lengths"),
        ("causal", "documents"),
        ("bias", "bias2"),
        ("alibi", "causal"),
        ("keep", "block"),
        ("window", "query_lengths"),
        ("prefix", "bias"),
        ("predicate", "alibi"),
        ("bottom_right", "keep"),
    ],
)
def test_combining_is_symmetric(a, b):
    parts = combination_parts()
    # documents (L,) needs Lq == Lk; use 5 x 5 for every pair.
    shape = (2, 2, 5, 5) if "documents" in (a, b) else (2, 2, 4, 5)
    ab = (parts[a] & parts[b]).materialize(*shape)
    ba = (parts[b] & parts[a]).materialize(*shape)
    np.testing.assert_array_equal(ab, ba)


def test_empty_mask_allows_everything(rng):
    m = ma.Mask()
    assert m.allows_all
    assert (ma.Mask() & ma.Mask()).allows_all
    shape = (2, 3, 4, 5)
    check(m, shape, np.ones(shape, dtype=bool), rng=rng)


def test_empty_mask_is_neutral_under_and():
    shape = (2, 2, 4, 6)
    c = ma.causal("bottom_right") & ma.key_lengths([6, 3])
    assert not c.allows_all
    assert not (ma.Mask() & c).allows_all
    np.testing.assert_array_equal((ma.Mask() & c).materialize(*shape), c.materialize(*shape))
    np.testing.assert_array_equal((c & ma.Mask()).materialize(*shape), c.materialize(*shape))


@pytest.mark.parametrize(
    "make,names",
    [
        (lambda: ma.causal() & ma.key_lengths([3, 2]), ["causal", "key_lengths"]),
        (lambda: ma.sliding_window(2, 1) & ma.query_lengths([1]), ["sliding_window", "query_lengths"]),
        (lambda: ma.documents([0, 1]) & ma.prefix_lm(1), ["documents", "prefix_lm"]),
        (lambda: ma.alibi([1.0]) & ma.bias(np.zeros(3)), ["alibi", "bias"]),
        (lambda: ma.keep(np.ones(3, bool)) & ma.block(np.zeros(3, bool)), ["keep", "block"]),
        (lambda: ma.predicate(lambda b, h, i, j: True), ["predicate"]),
        (lambda: ma.causal("bottom_right"), ["causal", "bottom_right"]),
    ],
)
def test_describe_and_repr_name_the_parts(make, names):
    m = make()
    text, r = m.describe(), repr(m)
    for n in names:
        assert n in text, text
        assert n in r, r


def test_describe_of_empty_mask():
    assert ma.Mask().describe() == "all"


# ---- random combinations -----------------------------------------------------


def random_part(g: np.random.Generator, B, H, Lq, Lk):
    """One random part: (mask, allowed (B,H,Lq,Lk), bias (B,H,Lq,Lk) or None)."""
    shape = (B, H, Lq, Lk)
    align = ALIGNS[g.integers(2)]
    kind = g.choice(
        ["causal", "window", "prefix", "documents", "key_lengths", "query_lengths",
         "keep", "block", "bias", "alibi", "predicate"]
    )
    if kind == "causal":
        return ma.causal(align), rule_causal(align, *shape), None
    if kind == "window":
        left = None if g.random() < 0.3 else int(g.integers(0, 4))
        right = None if g.random() < 0.3 else int(g.integers(0, 4))
        return ma.sliding_window(left, right, align), rule_sliding_window(left, right, align, *shape), None
    if kind == "prefix":
        n = int(g.integers(0, Lk + 2))
        return ma.prefix_lm(n, align), rule_prefix_lm(n, align, *shape), None
    if kind == "documents":
        per_batch = g.random() < 0.5
        qi = g.integers(0, 3, size=(B, Lq) if per_batch else (Lq,))
        if Lq == Lk and g.random() < 0.5:
            return ma.documents(qi), rule_documents(qi, qi, *shape), None
        ki = g.integers(0, 3, size=(B, Lk) if per_batch else (Lk,))
        return ma.documents(qi, ki), rule_documents(qi, ki, *shape), None
    if kind == "key_lengths":
        n = g.integers(0, Lk + 1, size=B)
        return ma.key_lengths(n), rule_key_lengths(n, *shape), None
    if kind == "query_lengths":
        n = g.integers(0, Lq + 1, size=B)
        return ma.query_lengths(n), rule_query_lengths(n, *shape), None
    # dense: a random broadcastable 4-D shape (each dim full or 1)
    arr_shape = tuple(int(d) if g.random() < 0.6 else 1 for d in shape)
    if kind in ("keep", "block"):
        a = g.random(arr_shape) < 0.8
        a4 = full(a, shape)
        return (ma.keep(a), a4, None) if kind == "keep" else (ma.block(a), ~a4, None)
    if kind == "bias":
        a = g.standard_normal(arr_shape).astype(np.float32)
        a[g.random(arr_shape) < 0.15] = -np.inf
        a4 = full(a.astype(np.float64), shape)
        ok = ~np.isneginf(a4)
        return ma.bias(a), ok, np.where(ok, a4, 0.0)
    if kind == "alibi":
        s = g.uniform(0, 1, size=H).astype(np.float32)
        return ma.alibi(s, align), np.ones(shape, bool), rule_alibi(s, align, *shape)
    table = g.random(shape) < 0.7
    return ma.predicate(lambda b, h, i, j: bool(table[b, h, i, j])), table.copy(), None


@pytest.mark.parametrize("seed", range(12))
def test_random_combinations_match_rules(seed, rng):
    g = np.random.default_rng(1000 + seed)
    for _ in range(6):
        B, H = int(g.integers(1, 4)), int(g.integers(1, 4))
        Lq, Lk = int(g.integers(1, 10)), int(g.integers(1, 10))
        shape = (B, H, Lq, Lk)
        mask, allowed, bias = ma.Mask(), np.ones(shape, bool), np.zeros(shape)
        for _ in range(int(g.integers(1, 5))):
            m, a, b_ = random_part(g, *shape)
            mask = mask & m
            allowed = allowed & a
            if b_ is not None:
                bias = bias + b_
        assert not mask.allows_all
        try:
            check(mask, shape, allowed, bias, rng=rng)
        except AssertionError as e:
            raise AssertionError(f"shape {shape}, mask {mask.describe()}") from e
