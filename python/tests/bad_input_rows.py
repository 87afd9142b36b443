"""MATRIX: the rows of the bad-input matrix, one block per public entry point.

Sizes are small (B = 2, H = 2, L = 3, S = 4, D = 4, E = 8) so that the whole
matrix runs in seconds. What each generic row means: bad_input_matrix.Entry.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import maskattn as ma
from bad_input_matrix import (
    MATRIX,
    TINY_BERT,
    Arr,
    Entry,
    assert_empty_tuple_shapes,
    assert_same,
    assert_shape,
    broadcast_huge,
    cases,
    entry,
    err,
    err_re,
    ids,
    ok,
    randn,
    type_err,
)

__all__ = ["MATRIX"]

B, H, L, S, D, E = 2, 2, 3, 4, 4, 8
HUGE = 2**40  # each size fits int64; a product of three does not
BEYOND_INT64 = 2**70

# ---- attention ---------------------------------------------------------------------

Q, K, V = randn(B, H, L, D), randn(B, H, S, D, seed=1), randn(B, H, S, D, seed=2)
OUT, LSE = ma.attention(Q, K, V, return_lse=True)
DOUT = randn(B, H, L, D, seed=3)


def _zero_hq_rows(name, call):
    return [
        ok("batch_0", lambda: call(q=np.zeros((0, H, L, D), np.float32),
                                   k=np.zeros((0, H, S, D), np.float32),
                                   v=np.zeros((0, H, S, D), np.float32)),
           lambda r: assert_same(r, np.zeros((0, H, L, D), np.float32))),
    ]


entry("ma.attention", Entry(
    lambda **a: ma.attention(**a),
    {"q": Arr(Q, ranks=(0, 3, 5)), "k": Arr(K, ranks=(3, 5)), "v": Arr(V, ranks=(3, 5)),
     "head_mask": Arr(np.ones(H, np.float32), kind="float", required=False, ranks=(3,))},
    [
        err("k_batch_mismatch", lambda: ma.attention(Q, K[:1], V[:1]), "k"),
        err("v_length_mismatch", lambda: ma.attention(Q, K, V[:, :, :2]), "v"),
        err("k_head_dim_mismatch", lambda: ma.attention(Q, K[..., :2], V), "k"),
        err("hkv_not_dividing_hq", lambda: ma.attention(Q, randn(B, 3, S, D), randn(B, 3, S, D)),
            "k"),
        err("zero_heads", lambda: ma.attention(Q[:, :0], K, V), "q"),
        err("zero_head_dim", lambda: ma.attention(Q[..., :0], K[..., :0], V), "q"),
        ok("batch_0", lambda: ma.attention(Q[:0], K[:0], V[:0]), assert_shape((0, H, L, D))),
        ok("q_len_0", lambda: ma.attention(Q[:, :, :0], K, V), assert_shape((B, H, 0, D))),
        ok("k_len_0_every_row_empty", lambda: ma.attention(Q, K[:, :, :0], V[:, :, :0]),
           lambda r: assert_same(r, np.zeros((B, H, L, D), np.float32))),
        # L*L*B*H overflows int64 in the weights: named, before any allocation.
        # Broadcast views (no memory) whose out or weights would overflow int64.
        err_re("weights_size_overflow",
            lambda: ma.attention(broadcast_huge((2**20, 2**10, 2**20, 1)),
                                 broadcast_huge((2**20, 2**10, 2**20, 1)),
                                 broadcast_huge((2**20, 2**10, 2**20, 1)), need_weights=True),
            r"q, k \(weights are \(B, Hq, Lq, Lk\)\): expected a size product that fits"),
        err_re("out_size_overflow",
            lambda: ma.attention(broadcast_huge((2**30, 2**30, 1, 1)),
                                 broadcast_huge((2**30, 1, 1, 1)),
                                 broadcast_huge((2**30, 1, 1, 2**30))),
            r"q, v \(out is \(B, Hq, Lq, Dv\)\): expected a size product that fits"),
        err("backend_unknown", lambda: ma.attention(Q, K, V, backend="cuda"), "backend"),
        err("empty_rows_unknown", lambda: ma.attention(Q, K, V, empty_rows="skip"), "empty_rows"),
        err("mask_raw_array", lambda: ma.attention(Q, K, V, np.ones((L, S), bool)), "mask"),
        err("mask_raw_torch", lambda: ma.attention(Q, K, V, torch.ones(L, S, dtype=torch.bool)),
            "mask"),
        err("mask_of_other_shape", lambda: ma.attention(Q, K, V, ma.keep(np.ones((2, 2), bool))),
            "keep"),
        err("dropout_p_1", lambda: ma.attention(Q, K, V, dropout_p=1.0), "dropout_p"),
        err("scale_nan", lambda: ma.attention(Q, K, V, scale=math.nan), "scale"),
        err("softcap_inf", lambda: ma.attention(Q, K, V, softcap=math.inf), "softcap"),
        err("head_mask_nan", lambda: ma.attention(Q, K, V, head_mask=np.array([1, np.nan],
                                                                               np.float32)),
            "head_mask"),
        type_err("backend_none", lambda: ma.attention(Q, K, V, backend=None)),
        type_err("seed_negative", lambda: ma.attention(Q, K, V, seed=-1)),
    ],
))

entry("ma.attention_backward", Entry(
    lambda **a: ma.attention_backward(**a),
    {"q": Arr(Q, ranks=(3, 5)), "k": Arr(K, ranks=(3,)), "v": Arr(V, ranks=(3,)),
     "out": Arr(OUT, ranks=(3,)), "lse": Arr(LSE, ranks=(2, 4)), "dout": Arr(DOUT, ranks=(3,)),
     "head_mask": Arr(np.ones(H, np.float32), kind="float", required=False)},
    [
        err("out_shape_mismatch", lambda: ma.attention_backward(Q, K, V, OUT[:, :, :2], LSE, DOUT),
            "out"),
        err("lse_shape_mismatch", lambda: ma.attention_backward(Q, K, V, OUT, LSE[:1], DOUT),
            "lse"),
        err("dout_shape_mismatch",
            lambda: ma.attention_backward(Q, K, V, OUT, LSE, DOUT[..., :2]), "dout"),
        err("k_batch_mismatch", lambda: ma.attention_backward(Q, K[:1], V[:1], OUT, LSE, DOUT),
            "k"),
        err("q_bfloat16", lambda: ma.attention_backward(torch.from_numpy(Q).bfloat16(), K, V, OUT,
                                                        LSE, DOUT), "q"),
        ok("batch_0", lambda: ma.attention_backward(Q[:0], K[:0], V[:0], OUT[:0], LSE[:0],
                                                    DOUT[:0]),
           assert_empty_tuple_shapes((0, H, L, D), (0, H, S, D), (0, H, S, D))),
        err("backend_unknown", lambda: ma.attention_backward(Q, K, V, OUT, LSE, DOUT,
                                                             backend="x"), "backend"),
        err("mask_raw_array",
            lambda: ma.attention_backward(Q, K, V, OUT, LSE, DOUT, np.ones((L, S), bool)), "mask"),
    ],
))

# ---- masks -------------------------------------------------------------------------

BOOL_LS = np.tril(np.ones((L, S), bool))
FLOAT_LS = np.where(BOOL_LS, 0.0, -np.inf).astype(np.float32)


def _dense(fn, value, kind, message):
    materialize = lambda **a: fn(**a).materialize(B, H, L, S)  # noqa: E731
    return Entry(
        materialize,
        {"array": Arr(value, kind=kind, ranks=(0, 5), message=message)},
        [
            err_re("shape_does_not_fit", lambda: fn(value[:2, :2]).materialize(B, H, L, S),
                   rf"mask: {message.split('|')[1]}: expected"),
            ok("zero_size_materialized_empty",
               lambda: fn(value[:0]).materialize(B, H, 0, S), assert_shape((B, H, 0, S))),
            ok("key_padding", lambda: fn(value[:B], key_padding=True).materialize(B, H, L, S),
               assert_shape((B, H, L, S))),
            type_err("key_padding_str", lambda: fn(value, key_padding="yes")),
        ],
    )


entry("ma.keep", _dense(ma.keep, BOOL_LS, "bool", "array|keep"))
entry("ma.block", _dense(ma.block, ~BOOL_LS, "bool", "array|block"))
entry("ma.bias", _dense(ma.bias, FLOAT_LS, "mask", "array|bias"))
cases(
    "ma.bias",
    err("bias_nan", lambda: ma.bias(np.array([[0.0, np.nan]], np.float32)), "bias"),
    err("bias_plus_inf", lambda: ma.bias(np.array([[0.0, np.inf]], np.float32)), "bias"),
    ok("bias_float64_is_read", lambda: ma.bias(FLOAT_LS.astype(np.float64)).materialize(1, 1, L, S),
       lambda r: assert_same(r[0, 0], FLOAT_LS)),
)

LENGTHS = np.array([3, 1], np.int64)
for _name, _fn in (("ma.key_lengths", ma.key_lengths), ("ma.query_lengths", ma.query_lengths)):
    entry(_name, Entry(
        lambda fn=_fn, **a: fn(**a).materialize(B, H, L, S),
        {"lengths": Arr(LENGTHS, kind="int", ranks=(0, 2))},
        [
            err_re("negative", lambda fn=_fn: fn([3, -1]),
                   r"(key|query)_lengths: expected lengths >= 0, got lengths\[1\] = -1"),
            err_re("beyond_the_length", lambda fn=_fn: fn([9, 9]).materialize(B, H, L, S),
                   r"mask: (key|query)_lengths: expected"),
            err_re("batch_mismatch", lambda fn=_fn: fn([1, 1, 1]).materialize(B, H, L, S),
                   r"mask: (key|query)_lengths: expected"),
            ok("empty_batch", lambda fn=_fn: fn([]).materialize(0, H, L, S),
               assert_shape((0, H, L, S))),
            err_re("huge_length", lambda fn=_fn: fn([2**62, 1]).materialize(B, H, L, S),
                   r"mask: (key|query)_lengths: expected lengths <= L"),
        ],
    ))

DOC_IDS = np.array([0, 0, 1], np.int64)
entry("ma.documents", Entry(
    lambda **a: ma.documents(**a).materialize(B, H, L, L),
    {"ids": Arr(DOC_IDS, kind="int", ranks=(0, 3)),
     "key_ids": Arr(DOC_IDS, kind="int", ranks=(0, 3), required=False)},
    [
        err_re("ids_length_mismatch",
               lambda: ma.documents(DOC_IDS).materialize(B, H, 4, 4), r"mask: documents: expected"),
        ok("negative_ids_are_ids", lambda: ma.documents(-DOC_IDS).materialize(1, 1, L, L),
           lambda r: assert_same(r, ma.documents(DOC_IDS).materialize(1, 1, L, L))),
    ],
))

entry("ma.alibi", Entry(
    lambda **a: ma.alibi(**a).materialize(B, H, L, S),
    {"slopes": Arr(np.array([0.5, 0.25], np.float32), kind="any", ranks=(0, 2))},
    [
        err("nan", lambda: ma.alibi([math.nan, 1.0]), "slopes"),
        err("inf", lambda: ma.alibi([math.inf, 1.0]), "slopes"),
        err("bool", lambda: ma.alibi(np.array([True, False])), "slopes"),
        err_re("heads_mismatch", lambda: ma.alibi([1.0]).materialize(B, 3, L, S),
               r"mask: alibi: expected"),
        err("align_unknown", lambda: ma.alibi([1.0, 0.5], "center"), "align"),
    ],
))

cases(
    "ma.alibi_slopes",
    ok("8_heads", lambda: ma.alibi_slopes(8),
       lambda r: np.testing.assert_allclose(r, 2.0 ** -np.arange(1, 9), rtol=1e-7)),
    err("zero", lambda: ma.alibi_slopes(0), "num_heads"),
    err("negative", lambda: ma.alibi_slopes(-1), "num_heads"),
    type_err("beyond_int64", lambda: ma.alibi_slopes(BEYOND_INT64)),
    type_err("float", lambda: ma.alibi_slopes(2.5)),
)
cases(
    "ma.causal",
    ok("default", lambda: ma.causal().materialize(1, 1, 2, 2),
       lambda r: assert_same(r[0, 0], np.array([[0, -np.inf], [0, 0]], np.float32))),
    err("align_unknown", lambda: ma.causal("left"), "align"),
    err("align_empty", lambda: ma.causal(""), "align"),
    type_err("align_none", lambda: ma.causal(None)),
)
cases(
    "ma.sliding_window",
    ok("none_is_unbounded", lambda: ma.sliding_window(None, None).materialize(1, 1, 2, 2),
       lambda r: assert_same(r, np.zeros((1, 1, 2, 2), np.float32))),
    err("left_negative", lambda: ma.sliding_window(-1), "left"),
    err("right_negative", lambda: ma.sliding_window(1, -2), "right"),
    err("align_unknown", lambda: ma.sliding_window(1, 0, "x"), "align"),
    ok("huge_is_unbounded_in_effect",
       lambda: ma.sliding_window(2**62, 2**62).materialize(1, 1, 2, 2),
       lambda r: assert_same(r, np.zeros((1, 1, 2, 2), np.float32))),
    type_err("left_str", lambda: ma.sliding_window("wide"), r"left: expected an int or None"),
    type_err("right_bool", lambda: ma.sliding_window(1, True), r"right: expected an int or None"),
    err("left_beyond_int64", lambda: ma.sliding_window(2**70), "left", " an int that fits"),
    ok("numpy_int", lambda: ma.sliding_window(np.int64(1), np.int32(0)).materialize(1, 1, 3, 3),
       lambda r: assert_same(r, ma.sliding_window(1, 0).materialize(1, 1, 3, 3))),
)
cases(
    "ma.prefix_lm",
    err("negative", lambda: ma.prefix_lm(-1), "n"),
    err("align_unknown", lambda: ma.prefix_lm(1, "x"), "align"),
    ok("beyond_the_length_sees_all", lambda: ma.prefix_lm(10).materialize(1, 1, 2, 2),
       lambda r: assert_same(r, np.zeros((1, 1, 2, 2), np.float32))),
)
cases(
    "ma.predicate",
    ok("rule", lambda: ma.predicate(lambda b, h, i, j: j <= i).materialize(1, 1, 2, 2),
       lambda r: assert_same(r[0, 0], np.array([[0, -np.inf], [0, 0]], np.float32))),
    err_re("returns_no_bool", lambda: ma.predicate(lambda b, h, i, j: 1).materialize(1, 1, 2, 2),
           r"predicate: fn: expected"),
    type_err("not_callable", lambda: ma.predicate(3)),
    type_err("none", lambda: ma.predicate(None)),
)
cases(
    "ma.subsequent_mask",
    ok("zero", lambda: ma.subsequent_mask(0), assert_shape((1, 0, 0))),
    err("negative", lambda: ma.subsequent_mask(-1), "size"),
    err("overflow", lambda: ma.subsequent_mask(2**32), "size"),
    type_err("beyond_int64", lambda: ma.subsequent_mask(BEYOND_INT64)),
)

# The adapters: every array argument optional (None = absent).
entry("ma.from_torch_mha_mask", Entry(
    lambda **a: ma.from_torch_mha_mask(**a).materialize(B, H, L, S),
    {"attn_mask": Arr(~BOOL_LS, kind="mask", ranks=(1, 4), required=False),
     "key_padding_mask": Arr(np.zeros((B, S), bool), kind="mask", ranks=(1, 3), required=False)},
    [
        err("num_heads_negative",
            lambda: ma.from_torch_mha_mask(np.zeros((4, L, S), bool), num_heads=-2), "num_heads"),
        err("num_heads_not_dividing",
            lambda: ma.from_torch_mha_mask(np.zeros((4, L, S), bool), num_heads=3), "num_heads"),
        err("nan", lambda: ma.from_torch_mha_mask(np.full((L, S), np.nan)), "attn_mask"),
        type_err("num_heads_str", lambda: ma.from_torch_mha_mask(None, None, "two"),
                 r"num_heads: expected an int or None"),
        err("num_heads_beyond_int64",
            lambda: ma.from_torch_mha_mask(np.zeros((4, L, S), bool), num_heads=2**64),
            "num_heads"),
    ],
))
entry("ma.from_sdpa_mask", Entry(
    lambda **a: ma.from_sdpa_mask(**a).materialize(B, H, L, S),
    {"attn_mask": Arr(BOOL_LS, kind="mask", ranks=(0, 5), required=False)},
    [
        err("mask_and_is_causal", lambda: ma.from_sdpa_mask(BOOL_LS, is_causal=True), "is_causal"),
        err("plus_inf", lambda: ma.from_sdpa_mask(np.full((L, S), np.inf)), "attn_mask"),
    ],
))
entry("ma.from_onnx_attention_mask", Entry(
    lambda **a: ma.from_onnx_attention_mask(**a).materialize(B, H, L, S),
    {"attn_mask": Arr(BOOL_LS, kind="mask", ranks=(0, 5), required=False)},
    [err("nan", lambda: ma.from_onnx_attention_mask(np.full((L, S), np.nan)), "attn_mask")],
))
HF = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int64)
entry("ma.from_hf_attention_mask", Entry(
    # attention_mask has no default: None (no mask) is the only way to leave it out.
    lambda attention_mask=None: ma.from_hf_attention_mask(attention_mask).materialize(B, H, L, S),
    {"attention_mask": Arr(HF, kind="any", ranks=(1, 3), required=False)},
    [
        err("value_2", lambda: ma.from_hf_attention_mask(HF * 2), "attention_mask"),
        err("value_negative", lambda: ma.from_hf_attention_mask(-HF), "attention_mask"),
        err("nan", lambda: ma.from_hf_attention_mask(np.full((B, 1, L, S), np.nan)),
            "attention_mask"),
        err("complex", lambda: ma.from_hf_attention_mask(HF.astype(np.complex64)),
            "attention_mask"),
    ],
))
KERAS = np.ones((B, L, S), np.int64)
entry("ma.from_keras_mask", Entry(
    lambda **a: ma.from_keras_mask(**a).materialize(B, H, L, S),
    {"attention_mask": Arr(KERAS, kind="any", ranks=(2, 4), required=False)},
    [
        err("value_2", lambda: ma.from_keras_mask(KERAS * 2), "attention_mask"),
        err("complex", lambda: ma.from_keras_mask(KERAS.astype(np.complex64)), "attention_mask"),
    ],
))

# Mask and its methods.
cases(
    "ma.Mask",
    ok("allows_all", lambda: ma.Mask(), lambda m: (m.allows_all, m.describe()) == (True, "")),
    type_err("arguments", lambda: ma.Mask(np.ones((2, 2), bool))),
)
cases(
    "ma.Mask.__and__",
    ok("and", lambda: (ma.causal() & ma.key_lengths([1])).materialize(1, 1, 2, 2),
       lambda r: assert_same(r[0, 0], np.array([[0, -np.inf], [0, -np.inf]], np.float32))),
    type_err("and_array", lambda: ma.causal() & np.ones((2, 2), bool)),
    ok("and_returns_not_implemented_for_arrays",
       lambda: ma.Mask.__and__(ma.causal(), np.ones((2, 2), bool)),
       lambda r: r is NotImplemented),
)
cases(
    "ma.Mask.describe",
    ok("describe", lambda: (ma.causal() & ma.key_lengths([2])).describe(),
       lambda r: assert_same(r, "causal(top_left) & key_lengths(B=1)")),
)
cases(
    "ma.Mask.materialize",
    err_re("negative", lambda: ma.Mask().materialize(-1, 1, 2, 2), r"mask shape: expected"),
    err_re("overflow", lambda: ma.causal().materialize(HUGE, HUGE, HUGE, HUGE),
           r"(mask shape|batch|heads|q_len|k_len): expected"),
    ok("zero_sizes", lambda: ma.causal().materialize(0, 1, 0, 3), assert_shape((0, 1, 0, 3))),
    type_err("beyond_int64", lambda: ma.Mask().materialize(BEYOND_INT64, 1, 1, 1)),
)

# ---- encoding, mlm -------------------------------------------------------------------

cases(
    "ma.sinusoidal_encoding",
    ok("shape", lambda: ma.sinusoidal_encoding(3, 4), assert_shape((3, 4))),
    ok("length_0", lambda: ma.sinusoidal_encoding(0, 4), assert_shape((0, 4))),
    err("length_negative", lambda: ma.sinusoidal_encoding(-1, 4), "length"),
    err("dim_0", lambda: ma.sinusoidal_encoding(3, 0), "dim"),
    err("dim_odd", lambda: ma.sinusoidal_encoding(3, 5), "dim"),
    err_re("overflow", lambda: ma.sinusoidal_encoding(HUGE, HUGE), r"(length|dim): expected"),
    err("base_nan", lambda: ma.sinusoidal_encoding(3, 4, base=math.nan), "base"),
    err("base_1", lambda: ma.sinusoidal_encoding(3, 4, base=1.0), "base"),
    err("layout_unknown", lambda: ma.sinusoidal_encoding(3, 4, layout="x"), "layout"),
)

TOKENS = np.array([[2, 5, 6, 7, 3, 0]], np.int64)
entry("ma.mlm_mask", Entry(
    lambda **a: ma.mlm_mask(**a, vocab_size=10, mask_token_id=4, special_token_ids=(0, 1, 2, 3)),
    {"token_ids": Arr(TOKENS, kind="int", ranks=(0, 3)),
     "word_ids": Arr(np.arange(6).reshape(1, 6), kind="int", ranks=(1, 3), required=False)},
    [
        err("token_id_out_of_range",
            lambda: ma.mlm_mask(np.array([[5, 10]]), vocab_size=10, mask_token_id=4), "token_ids"),
        err("token_id_negative",
            lambda: ma.mlm_mask(np.array([[5, -1]]), vocab_size=10, mask_token_id=4), "token_ids"),
        err("mask_token_id_out_of_range",
            lambda: ma.mlm_mask(TOKENS, vocab_size=10, mask_token_id=10), "mask_token_id"),
        err("special_token_id_out_of_range",
            lambda: ma.mlm_mask(TOKENS, vocab_size=10, mask_token_id=4, special_token_ids=(99,)),
            "special_token_ids"),
        err("vocab_size_0", lambda: ma.mlm_mask(TOKENS, vocab_size=0, mask_token_id=0),
            "vocab_size"),
        err("probability_nan",
            lambda: ma.mlm_mask(TOKENS, vocab_size=10, mask_token_id=4, mlm_probability=math.nan),
            "mlm_probability"),
        err("word_ids_shape_mismatch",
            lambda: ma.mlm_mask(TOKENS, vocab_size=10, mask_token_id=4,
                                word_ids=np.zeros((1, 5), np.int64)), "word_ids"),
        ok("empty_batch",
           lambda: ma.mlm_mask(np.zeros((0, 6), np.int64), vocab_size=10, mask_token_id=4),
           assert_empty_tuple_shapes((0, 6), (0, 6))),
        type_err("special_token_ids_none",
                 lambda: ma.mlm_mask(TOKENS, vocab_size=10, mask_token_id=4,
                                     special_token_ids=None)),
    ],
))

# ---- cross_entropy ---------------------------------------------------------------------

LOGITS = randn(B, L, 5)
TARGETS = ids(B, L, high=5)
entry("ma.cross_entropy", Entry(
    lambda **a: ma.cross_entropy(**a),
    {"logits": Arr(LOGITS, ranks=(0,)), "targets": Arr(TARGETS, kind="int", ranks=(1, 3))},
    [
        err("target_out_of_range", lambda: ma.cross_entropy(LOGITS, TARGETS + 5), "targets"),
        err("target_negative", lambda: ma.cross_entropy(LOGITS, -TARGETS - 1), "targets"),
        err("shape_mismatch", lambda: ma.cross_entropy(LOGITS, TARGETS[:1]), "targets"),
        err("zero_classes", lambda: ma.cross_entropy(LOGITS[..., :0], TARGETS), "logits"),
        err("label_smoothing_nan",
            lambda: ma.cross_entropy(LOGITS, TARGETS, label_smoothing=math.nan), "label_smoothing"),
        err("reduction_unknown", lambda: ma.cross_entropy(LOGITS, TARGETS, reduction="none"),
            "reduction"),
        ok("empty_batch_loss_0",
           lambda: ma.cross_entropy(LOGITS[:0], TARGETS[:0]),
           lambda r: (assert_same(r[0], 0.0), assert_shape((0, L, 5))(r[1]))),
        ok("every_target_ignored_loss_0",
           lambda: ma.cross_entropy(LOGITS, np.full((B, L), -100)),
           lambda r: (assert_same(r[0], 0.0), assert_same(r[1], np.zeros_like(LOGITS)))),
    ],
))

# ---- safetensors --------------------------------------------------------------------------


def _saved_metadata():
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        ma.save_safetensors(path, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"k": "v"})
        return ma.safetensors_metadata(path)
    finally:
        os.remove(path)


def _save_and_load(tensors, metadata=None):
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        ma.save_safetensors(path, tensors, metadata)
        return ma.load_safetensors(path)
    finally:
        os.remove(path)


entry("ma.save_safetensors", Entry(
    lambda **a: _save_and_load({"x": a["x"]}),
    {"x": Arr(np.arange(6, dtype=np.float32).reshape(2, 3), kind="any", message='tensors["x"]')},
    [
        type_err("tensors_not_a_dict", lambda: _save_and_load([np.zeros(2)]), r"tensors"),
        type_err("tensors_none", lambda: _save_and_load(None), r"tensors"),
        type_err("key_not_str", lambda: _save_and_load({1: np.zeros(2)}), r"tensors"),
        type_err("metadata_not_str", lambda: _save_and_load({"x": np.zeros(2)}, {"k": 1}),
                 r"metadata"),
        err("float16", lambda: _save_and_load({"x": np.zeros(2, np.float16)}), 'tensors["x"]'),
        ok("zero_size", lambda: _save_and_load({"x": np.zeros((0, 3), np.float32)}),
           lambda r: assert_same(r, {"x": np.zeros((0, 3), np.float32)})),
        ok("empty_dict", lambda: _save_and_load({}), lambda r: assert_same(r, {})),
        type_err("path_none", lambda: ma.save_safetensors(None, {})),
    ],
))
cases(
    "ma.load_safetensors",
    err_re("missing_file", lambda: ma.load_safetensors("/nonexistent/x.safetensors"),
           r'safetensors file "/nonexistent/x.safetensors": expected a readable file'),
    err_re("not_a_safetensors_file", lambda: ma.load_safetensors(str(TINY_BERT / "config.json")),
           r"config.json.*expected"),
    type_err("path_none", lambda: ma.load_safetensors(None)),
    type_err("path_int", lambda: ma.load_safetensors(3.5)),
)
cases(
    "ma.safetensors_metadata",
    err_re("missing_file", lambda: ma.safetensors_metadata("/nonexistent/x.safetensors"),
           r'safetensors file "/nonexistent/x.safetensors": expected a readable file'),
    ok("metadata", _saved_metadata, lambda r: assert_same(r, {"k": "v"})),
    type_err("path_none", lambda: ma.safetensors_metadata(None)),
)

# ---- leak checks -------------------------------------------------------------------------

cases(
    "ma.check_leaks",
    ok("no_leak", lambda: ma.check_leaks(ma.causal(), ma.causal(), 1, 1, 3, 3),
       lambda r: (not r.leaks_found) or (_ for _ in ()).throw(AssertionError(str(r)))),
    err("mask_raw_array", lambda: ma.check_leaks(np.ones((3, 3), bool), ma.causal(), 1, 1, 3, 3),
        "mask"),
    err("expect_raw_array",
        lambda: ma.check_leaks(ma.causal(), np.ones((3, 3), bool), 1, 1, 3, 3), "expect"),
    err("negative_batch", lambda: ma.check_leaks(None, None, -1, 1, 3, 3),
        "batch, heads, q_len, k_len", r" \(B, H, Lq, Lk\) sizes >= 1, got \(-1, 1, 3, 3\)"),
    err("zero_heads", lambda: ma.check_leaks(None, None, 1, 0, 3, 3),
        "batch, heads, q_len, k_len"),
    err("overflow", lambda: ma.check_leaks(None, None, HUGE, HUGE, HUGE, HUGE),
        "batch, heads, q_len, k_len", " a size product that fits in int64"),
    err("head_dim_0", lambda: ma.check_leaks(None, None, 1, 1, 3, 3, head_dim=0), "head_dim"),
    err("tolerance_nan", lambda: ma.check_leaks(None, None, 1, 1, 3, 3, tolerance=math.nan),
        "tolerance"),
    err("backend_unknown", lambda: ma.check_leaks(None, None, 1, 1, 3, 3, backend="x"),
        "backend"),
)

VOCAB = 7


def _causal_model(tokens):
    # out[b, i] = cumulative sum of the embedded tokens: sees only j <= i.
    return np.cumsum(np.eye(VOCAB, dtype=np.float32)[tokens], axis=1)


LEAK_TOKENS = ids(2, 4, high=VOCAB)
entry("ma.check_model_leaks", Entry(
    lambda **a: ma.check_model_leaks(_causal_model, a["tokens"], ma.causal(),
                                     vocab_size=VOCAB).hidden_pairs,
    {"tokens": Arr(LEAK_TOKENS, kind="int", ranks=(1, 3))},
    [
        err("token_out_of_range",
            lambda: ma.check_model_leaks(_causal_model, LEAK_TOKENS + VOCAB, ma.causal(),
                                         vocab_size=VOCAB), "tokens"),
        err("vocab_size_1",
            lambda: ma.check_model_leaks(_causal_model, LEAK_TOKENS * 0, ma.causal(),
                                         vocab_size=1), "vocab_size"),
        err_re("model_returns_wrong_rank",
               lambda: ma.check_model_leaks(lambda t: np.zeros(3, np.float32), LEAK_TOKENS,
                                            ma.causal(), vocab_size=VOCAB), r"model.*expected"),
        # Was "no leak": a NaN output stays NaN whatever the tokens.
        err_re("model_returns_nan",
               lambda: ma.check_model_leaks(lambda t: np.full(t.shape + (2,), np.nan, np.float32),
                                            LEAK_TOKENS, ma.causal(), vocab_size=VOCAB),
               r"model output: expected finite values"),
        err("expect_raw_array",
            lambda: ma.check_model_leaks(_causal_model, LEAK_TOKENS, np.ones((4, 4), bool),
                                         vocab_size=VOCAB), "expect"),
        type_err("model_not_callable",
                 lambda: ma.check_model_leaks(3, LEAK_TOKENS, None, vocab_size=VOCAB)),
    ],
))
cases(
    "ma.Leak",
    type_err("not_constructible", lambda: ma.Leak()),
)
cases(
    "ma.LeakReport",
    type_err("not_constructible", lambda: ma.LeakReport()),
)

import bad_input_rows_modules  # noqa: E402,F401  # the modules, models, training, viz rows
