"""``ma.from_onnx_attention_mask`` against ONNX's reference ``Attention`` (opset 23).

Each case builds a one-node ONNX model with ``onnx.helper`` (inputs Q, K, V
4-D (B, H, L, D) float32, optional ``attn_mask``, attributes ``is_causal``,
``scale``, ``softcap``), runs it with ``onnx.reference.ReferenceEvaluator``
and compares its output Y with ``ma.attention(q, k, v,
ma.from_onnx_attention_mask(mask, is_causal), scale=..., softcap=...)``.

What ``onnx/reference/ops/op_attention.py`` (onnx 1.23.2) does, and so what
is checked here:
  * bool mask True = may attend; float mask added to the scores (-inf =
    masked); broadcast numpy-style, i.e. right-aligned against
    (B, H, Lq, Lk), so a rank-3 mask is (H, Lq, Lk);
  * ``is_causal``: j <= i + past_sequence_length. Without ``past_key`` that is
    offset 0, top-left, also when Lq != Lk (the same as maskattn's adapter);
    with ``past_key`` it is bottom-right against the present keys, which the
    adapter cannot know (it gets no past length): there
    ``causal("bottom_right")`` is the equivalent;
  * ``is_causal`` and a mask both apply (the biases add);
  * softcap before the mask; Q and K each scaled by sqrt(scale);
  * 4-D inputs give the head counts; Hq != Hkv is grouped-query attention
    with kv head h // (Hq / Hkv) (``np.repeat``);
  * a fully masked row gives Y = 0, not NaN (the spec's errata), which is
    maskattn's default ``empty_rows="zero"``.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import OUT_ATOL, randn
from onnx import TensorProto, checker, helper
from onnx.reference import ReferenceEvaluator

import maskattn as ma

B, H, D = 2, 3, 8  # B != H, so a rank-3 mask read as (B, L, S) would not fit

GEOMETRIES = {"self": (5, 5), "longer_keys": (3, 7), "longer_queries": (6, 4)}


# ---------------------------------------------------------------------------
# The ONNX reference
# ---------------------------------------------------------------------------


def onnx_attention(
    q, k, v, mask=None, *, is_causal=False, scale=None, softcap=None, past_key=None, past_value=None
) -> np.ndarray:
    """Y of a one-node opset-23 ``Attention`` model, run by the reference."""
    feeds = {"Q": q, "K": k, "V": v}
    inputs = ["Q", "K", "V"]
    if mask is not None:
        feeds["attn_mask"] = mask
        inputs.append("attn_mask")
    if past_key is not None:
        if mask is None:
            inputs.append("")  # optional input left out
        feeds["past_key"], feeds["past_value"] = past_key, past_value
        inputs += ["past_key", "past_value"]

    attrs = {"is_causal": int(is_causal)}
    if scale is not None:
        attrs["scale"] = float(scale)
    if softcap is not None:
        attrs["softcap"] = float(softcap)
    outputs = ["Y"] if past_key is None else ["Y", "present_key", "present_value"]
    node = helper.make_node("Attention", inputs, outputs, **attrs)

    def info(name, arr):
        elem = TensorProto.BOOL if arr.dtype == np.bool_ else TensorProto.FLOAT
        return helper.make_tensor_value_info(name, elem, list(arr.shape))

    graph = helper.make_graph(
        [node],
        "attention",
        [info(n, feeds[n]) for n in inputs if n],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None] * 4) for n in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    checker.check_model(model)
    return ReferenceEvaluator(model).run(None, feeds)[0]


def qkv(rng, lq, lk, hq=H, hkv=H, dv=D):
    return randn(rng, B, hq, lq, D), randn(rng, B, hkv, lk, D), randn(rng, B, hkv, lk, dv)


# ---------------------------------------------------------------------------
# Masks in ONNX's convention, built from the rule
# ---------------------------------------------------------------------------


def _allowed(rng, shape) -> np.ndarray:
    """Random 'may attend' pattern (about 60 %); key 0 always allowed, so no
    row is fully masked."""
    m = rng.random(shape) < 0.6
    m[..., 0] = True
    return m


def _additive(rng, allowed) -> np.ndarray:
    vals = rng.standard_normal(allowed.shape).astype(np.float32)
    return np.where(allowed, vals, -np.inf).astype(np.float32)


MASK_SHAPES = {
    "bool_1d": (np.bool_, lambda lq, lk: (lk,)),
    "bool_2d": (np.bool_, lambda lq, lk: (lq, lk)),
    "bool_3d_heads": (np.bool_, lambda lq, lk: (H, lq, lk)),  # right-aligned: (H, L, S)
    "bool_4d": (np.bool_, lambda lq, lk: (B, H, lq, lk)),
    "bool_4d_batch": (np.bool_, lambda lq, lk: (B, 1, lq, lk)),
    "bool_4d_head_key": (np.bool_, lambda lq, lk: (1, H, 1, lk)),
    "float_2d": (np.float32, lambda lq, lk: (lq, lk)),
    "float_3d_heads": (np.float32, lambda lq, lk: (H, lq, lk)),
    "float_4d": (np.float32, lambda lq, lk: (B, H, lq, lk)),
    "float_4d_batch_key": (np.float32, lambda lq, lk: (B, 1, 1, lk)),
}


def make_mask(case, rng, lq, lk):
    dtype, shape = MASK_SHAPES[case]
    allowed = _allowed(rng, shape(lq, lk))
    return allowed if dtype == np.bool_ else _additive(rng, allowed)


# ---------------------------------------------------------------------------
# Masks without is_causal
# ---------------------------------------------------------------------------


def test_no_mask_matches_reference(rng):
    q, k, v = qkv(rng, *GEOMETRIES["longer_keys"])
    want = onnx_attention(q, k, v)
    got = ma.attention(q, k, v, ma.from_onnx_attention_mask(None))
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)
    assert ma.from_onnx_attention_mask().allows_all


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("case", list(MASK_SHAPES))
def test_mask_matches_reference(case, geometry, rng):
    lq, lk = GEOMETRIES[geometry]
    q, k, v = qkv(rng, lq, lk)
    mask = make_mask(case, rng, lq, lk)
    want = onnx_attention(q, k, v, mask)
    got = ma.attention(q, k, v, ma.from_onnx_attention_mask(mask))
    assert got.shape == want.shape == (B, H, lq, D)
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)


def test_rank3_mask_is_heads_not_batch(rng):
    """(H, L, S) with H = B would be ambiguous; with B != H only the
    right-aligned reading fits, and a (B, L, S) mask is rejected."""
    lq, lk = GEOMETRIES["self"]
    by_batch = _allowed(rng, (B, lq, lk))
    with pytest.raises(ValueError):
        ma.from_onnx_attention_mask(by_batch).materialize(B, H, lq, lk)
    with pytest.raises(ValueError, match="broadcast"):  # nor can the reference
        onnx_attention(*qkv(rng, lq, lk), by_batch)


# ---------------------------------------------------------------------------
# is_causal: alignment, and together with a mask
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_is_causal_is_top_left_like_reference(geometry, rng):
    lq, lk = GEOMETRIES[geometry]
    q, k, v = qkv(rng, lq, lk)
    want = onnx_attention(q, k, v, is_causal=True)

    got = ma.attention(q, k, v, ma.from_onnx_attention_mask(None, is_causal=True))
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)
    top_left = ma.attention(q, k, v, ma.causal("top_left"))
    np.testing.assert_allclose(top_left, want, rtol=0, atol=OUT_ATOL)
    if lq != lk:  # the alignment matters here, and the reference is not bottom-right
        bottom_right = ma.attention(q, k, v, ma.causal("bottom_right"))
        assert np.abs(bottom_right - want).max() > 100 * OUT_ATOL


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("case", ["bool_2d", "bool_4d_batch", "float_2d", "float_4d"])
def test_is_causal_and_mask_both_apply(case, geometry, rng):
    lq, lk = GEOMETRIES[geometry]
    q, k, v = qkv(rng, lq, lk)
    mask = make_mask(case, rng, lq, lk)
    want = onnx_attention(q, k, v, mask, is_causal=True)
    got = ma.attention(q, k, v, ma.from_onnx_attention_mask(mask, is_causal=True))
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)
    # Not the mask alone, nor the causal mask alone.
    mask_only = ma.attention(q, k, v, ma.from_onnx_attention_mask(mask))
    causal_only = ma.attention(q, k, v, ma.causal())
    assert np.abs(mask_only - want).max() > 100 * OUT_ATOL
    assert np.abs(causal_only - want).max() > 100 * OUT_ATOL


@pytest.mark.parametrize("with_mask", [False, True])
def test_is_causal_with_past_key_is_bottom_right(with_mask, rng):
    """With past_key the reference's causal frontier is j <= i + past_len over
    the present keys (past + new): bottom-right. The adapter has no past
    length, so its is_causal is top-left; causal("bottom_right") is what
    matches."""
    lq, past = 3, 4
    q, k, v = qkv(rng, lq, lq)
    past_key, past_value = randn(rng, B, H, past, D), randn(rng, B, H, past, D)
    mask = _allowed(rng, (B, 1, lq, past + lq)) if with_mask else None
    want = onnx_attention(q, k, v, mask, is_causal=True, past_key=past_key, past_value=past_value)

    k_all = np.concatenate([past_key, k], axis=2)
    v_all = np.concatenate([past_value, v], axis=2)
    got = ma.attention(
        q, k_all, v_all, ma.from_onnx_attention_mask(mask) & ma.causal("bottom_right")
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)
    adapter_causal = ma.attention(q, k_all, v_all, ma.from_onnx_attention_mask(mask, is_causal=True))
    assert np.abs(adapter_causal - want).max() > 100 * OUT_ATOL


# ---------------------------------------------------------------------------
# Grouped-query attention, scale, softcap, value head size
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("hq", "hkv"), [(6, 3), (6, 2), (6, 1)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_grouped_query_attention_matches_reference(hq, hkv, is_causal, rng):
    lq, lk = GEOMETRIES["longer_keys"]
    q, k, v = qkv(rng, lq, lk, hq=hq, hkv=hkv)
    mask = _allowed(rng, (1, hq, lq, lk))  # per query head
    want = onnx_attention(q, k, v, mask, is_causal=is_causal)
    got = ma.attention(q, k, v, ma.from_onnx_attention_mask(mask, is_causal=is_causal))
    assert got.shape == want.shape == (B, hq, lq, D)
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)


@pytest.mark.parametrize("softcap", [None, 2.0, 10.0])
@pytest.mark.parametrize("scale", [None, 0.3, 1.0])
def test_scale_and_softcap_match_reference(scale, softcap, rng):
    lq, lk = GEOMETRIES["self"]
    q, k, v = qkv(rng, lq, lk)
    q *= 2.0  # large scores, so the softcap bites
    mask = make_mask("float_4d", rng, lq, lk)
    want = onnx_attention(q, k, v, mask, is_causal=True, scale=scale, softcap=softcap)
    got = ma.attention(
        q,
        k,
        v,
        ma.from_onnx_attention_mask(mask, is_causal=True),
        scale=scale,
        softcap=0.0 if softcap is None else softcap,
    )
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)


def test_value_head_size_may_differ(rng):
    lq, lk = GEOMETRIES["longer_queries"]
    q, k, v = qkv(rng, lq, lk, dv=5)
    mask = make_mask("bool_2d", rng, lq, lk)
    want = onnx_attention(q, k, v, mask)
    got = ma.attention(q, k, v, ma.from_onnx_attention_mask(mask))
    assert got.shape == want.shape == (B, H, lq, 5)
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)


# ---------------------------------------------------------------------------
# Fully masked rows: zeros in both
# ---------------------------------------------------------------------------


def _empty_row_case(kind, rng, lq, lk):
    """(mask, is_causal, empty (B, H, Lq) by the rule)."""
    empty = np.zeros((B, H, lq), dtype=bool)
    if kind == "bool_row_all_false":  # (b=1, h=2, i=1) attends nothing
        mask = _allowed(rng, (B, H, lq, lk))
        mask[1, 2, 1, :] = False
        empty[1, 2, 1] = True
        return mask, False, empty
    if kind == "float_row_all_neg_inf":  # query 2 attends nothing, everywhere
        allowed = _allowed(rng, (lq, lk))
        allowed[2, :] = False
        empty[:, :, 2] = True
        return _additive(rng, allowed), False, empty
    if kind == "causal_and_mask":  # query 0 sees key 0 only, which the mask hides
        mask = _allowed(rng, (B, 1, lq, lk))
        mask[0, 0, 0, 0] = False
        empty[0, :, 0] = True
        return mask, True, empty
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bool_row_all_false", "float_row_all_neg_inf", "causal_and_mask"])
def test_fully_masked_rows_are_zero_in_reference_and_maskattn(kind, rng):
    lq, lk = GEOMETRIES["longer_keys"]
    q, k, v = qkv(rng, lq, lk)
    mask, is_causal, empty = _empty_row_case(kind, rng, lq, lk)
    want = onnx_attention(q, k, v, mask, is_causal=is_causal)
    got = ma.attention(q, k, v, ma.from_onnx_attention_mask(mask, is_causal=is_causal))

    assert not np.isnan(want).any()
    assert (want[empty] == 0).all()  # the reference's fully-masked-row guard
    assert (got[empty] == 0).all()
    assert (np.abs(want[~empty]).max(axis=-1) > 0).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=OUT_ATOL)


# ---------------------------------------------------------------------------
# What is rejected
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_integer_mask_is_rejected(dtype):
    # ONNX types attn_mask as bool or the float type of Q/K/V.
    with pytest.raises(ValueError):
        ma.from_onnx_attention_mask(np.ones((3, 4), dtype=dtype))


def test_rank5_mask_is_rejected():
    with pytest.raises(ValueError):
        ma.from_onnx_attention_mask(np.ones((1, 1, 1, 3, 4), dtype=bool))
