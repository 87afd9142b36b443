"""Bad input to every public function of maskattn: ValueError naming the argument.

What it proves:
  * Every public function, given bad input (wrong rank or dtype, shapes that
    do not agree, zero sizes where forbidden, out-of-range numbers, NaN/inf
    where only finite values make sense, unknown option strings, a raw array
    where a Mask is needed, masks that do not fit the problem, sizes whose
    product overflows), raises ValueError -- never a crash, never NaN -- and
    the message names the argument in the library's form
    "maskattn: <argument>: expected ..., got ...".
  * Zero sizes the contract allows (B = 0, Lq = 0, Lk = 0) are not errors.
  * Large-magnitude q and k (scores up to ~1e36) give finite results equal to
    the float64 oracle (conftest.attention_f64) within the conftest
    tolerances scaled to the values' magnitude.

Expected messages are written from the argument names of the Python API
(_maskattn.pyi, docs/python.md); expected numbers come from the float64 oracle
with masks built from the rule in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import maskattn as ma
from conftest import LSE_ATOL, OUT_ATOL, WEIGHTS_ATOL, attention_f64, neg_inf_where_blocked, randn

_RNG = np.random.default_rng(5)
B, HQ, HKV, LQ, LK, D, DV = 2, 4, 2, 5, 6, 8, 3
Q = _RNG.standard_normal((B, HQ, LQ, D)).astype(np.float32)
K = _RNG.standard_normal((B, HKV, LK, D)).astype(np.float32)
V = _RNG.standard_normal((B, HKV, LK, DV)).astype(np.float32)
TOKENS = np.array([[2, 5, 6, 7, 3, 0]], dtype=np.int64)  # [CLS] w w w [SEP] [PAD]


def zeros(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def attend(q=Q, k=K, v=V, mask=None, **kwargs):
    return ma.attention(q, k, v, mask, **kwargs)


def mlm(tokens=TOKENS, **kwargs):
    kwargs.setdefault("vocab_size", 10)
    kwargs.setdefault("mask_token_id", 4)
    kwargs.setdefault("special_token_ids", (0, 1, 2, 3))
    return ma.mlm_mask(tokens, **kwargs)


def named(argument: str) -> str:
    """The library's message form: '<argument>: expected'."""
    return rf"(^|[\s:]){argument}: expected"


def case(fn, match, case_id):
    return pytest.param(fn, match, id=case_id)


# ---- q, k, v: rank, dtype ----------------------------------------------------


def _with(argument, value):
    args = {"q": Q, "k": K, "v": V}
    args[argument] = value
    return args


@pytest.mark.parametrize("argument", ["q", "k", "v"])
@pytest.mark.parametrize("rank", [3, 5])
def test_wrong_rank_of_q_k_v_names_it(argument, rank):
    base = {"q": Q, "k": K, "v": V}[argument]
    bad = base[0] if rank == 3 else base[None]
    match = named(argument) + r" a float32 or bfloat16 array of rank 4"
    with pytest.raises(ValueError, match=match):
        ma.attention(**_with(argument, bad))


@pytest.mark.parametrize("argument", ["q", "k", "v"])
@pytest.mark.parametrize(
    "convert, dtype_name",
    [
        (lambda x: x.astype(np.float64), "float64"),
        (lambda x: x.astype(np.float16), "float16"),
        (lambda x: x.astype(np.int32), "int32"),
        (lambda x: x.astype(np.int64), "int64"),
        (lambda x: x > 0, "bool"),
        (lambda x: torch.from_numpy(x).double(), "float64"),
        (lambda x: torch.from_numpy(x).half(), "float16"),
        (lambda x: torch.from_numpy(x).long(), "int64"),
        # numpy has no bfloat16; its bits as uint16 are not read as one.
        (lambda x: torch.from_numpy(x).bfloat16().view(torch.int16).numpy().view(np.uint16),
         "uint16"),
    ],
    ids=[
        "np_f64", "np_f16", "np_i32", "np_i64", "np_bool",
        "pt_f64", "pt_f16", "pt_i64", "np_u16_bf16_bits",
    ],
)
def test_wrong_dtype_of_q_k_v_names_it_and_the_dtype(argument, convert, dtype_name):
    bad = convert({"q": Q, "k": K, "v": V}[argument])
    match = named(argument) + rf" a float32 or bfloat16 array.*got {dtype_name}\b"
    with pytest.raises(ValueError, match=match):
        ma.attention(**_with(argument, bad))


def _bf16(x):
    return torch.from_numpy(x).bfloat16()


def case_(args, argument, match, case_id):
    return pytest.param(args, argument, match, id=case_id)


LIKE_Q = r" a {} array of rank 4 \({}\) like q, got {}"


@pytest.mark.parametrize(
    "args, argument, match",
    [
        # q decides the storage; the first of k, v stored otherwise is named.
        case_(dict(k=_bf16(K)), "k",
              LIKE_Q.format("float32", "B, Hkv, Lk, D", "bfloat16"), "k_bf16"),
        case_(dict(v=_bf16(V)), "v",
              LIKE_Q.format("float32", "B, Hkv, Lk, Dv", "bfloat16"), "v_bf16"),
        case_(dict(q=_bf16(Q)), "k",
              LIKE_Q.format("bfloat16", "B, Hkv, Lk, D", "float32"), "q_bf16"),
        case_(dict(q=_bf16(Q), k=_bf16(K)), "v",
              LIKE_Q.format("bfloat16", "B, Hkv, Lk, Dv", "float32"), "q_k_bf16"),
        case_(dict(q=_bf16(Q), k=_bf16(K), v=torch.from_numpy(V).half()), "v",
              r" a float32 or bfloat16 array of rank 4 .*got float16", "v_f16"),
        case_(dict(q=_bf16(Q)[0], k=_bf16(K), v=_bf16(V)), "q",
              r" a float32 or bfloat16 array of rank 4 .*got bfloat16 \(4, 5, 8\)", "q_rank_3"),
    ],
)
def test_q_k_v_stored_in_different_dtypes_name_the_argument(args, argument, match):
    with pytest.raises(ValueError, match=named(argument) + match):
        ma.attention(**{"q": Q, "k": K, "v": V, **args})


def test_q_of_a_type_that_is_no_array_names_q():
    with pytest.raises(ValueError, match=named("q")):
        ma.attention("not an array", K, V)


# ---- q, k, v: shapes that do not agree, zero sizes ----------------------------

SHAPE_CASES = [
    case(lambda: attend(k=K[:1], v=V[:1]), named("k") + r" \(2, Hkv, Lk, 8\)", "batch_k_vs_q"),
    case(lambda: attend(v=V[:1]), named("v") + r" \(2, 2, 6, Dv\)", "batch_v_vs_k"),
    case(lambda: attend(v=V[:, :1]), named("v"), "heads_v_vs_k"),
    case(lambda: attend(k=K[..., :4]), named("k") + r" \(2, Hkv, Lk, 8\)", "dim_k_vs_q"),
    case(lambda: attend(v=V[:, :, :5]), named("v") + r" \(2, 2, 6, Dv\)", "length_v_vs_k"),
    case(lambda: attend(q=Q[:, :3]), named("k") + r" .*dividing Hq = 3", "hq_not_divisible_by_hkv"),
    # Zero sizes: the message names the argument and shows the shape given.
    case(lambda: attend(q=zeros(B, 0, LQ, D)), named("q") + r".*got \(2, 0, 5, 8\)", "zero_hq"),
    case(
        lambda: attend(k=zeros(B, 0, LK, D), v=zeros(B, 0, LK, DV)),
        named("k") + r".*got \(2, 0, 6, 8\)",
        "zero_hkv",
    ),
    case(
        lambda: attend(q=zeros(B, HQ, LQ, 0), k=zeros(B, HKV, LK, 0)),
        named("q") + r".*got \(2, 4, 5, 0\)",
        "zero_d",
    ),
    case(lambda: attend(v=zeros(B, HKV, LK, 0)), named("v") + r".*got \(2, 2, 6, 0\)", "zero_dv"),
    case(
        lambda: attend(q=torch.zeros(B, 0, LQ, D), k=torch.from_numpy(K), v=torch.from_numpy(V)),
        named("q") + r".*got \(2, 0, 5, 8\)",
        "zero_hq_torch",
    ),
]


@pytest.mark.parametrize("fn, match", SHAPE_CASES)
def test_q_k_v_shapes_that_do_not_agree_name_the_argument(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy], ids=["numpy", "torch"])
@pytest.mark.parametrize(
    "q_shape, k_shape, v_shape",
    [
        ((0, HQ, LQ, D), (0, HKV, LK, D), (0, HKV, LK, DV)),  # B = 0
        ((B, HQ, 0, D), (B, HKV, LK, D), (B, HKV, LK, DV)),  # Lq = 0
        ((B, HQ, LQ, D), (B, HKV, 0, D), (B, HKV, 0, DV)),  # Lk = 0: every row empty
    ],
    ids=["batch_0", "q_len_0", "k_len_0"],
)
def test_zero_sizes_the_contract_allows_are_not_errors(to, q_shape, k_shape, v_shape):
    # attention.hpp requires Hq, Hkv, D, Dv >= 1 only; an empty batch or
    # sequence gives an empty result, and Lk = 0 makes every row an empty row
    # (out 0, weights 0, lse -inf with empty_rows="zero").
    q, k, v = (to(np.ones(s, np.float32)) for s in (q_shape, k_shape, v_shape))
    out, weights, lse = ma.attention(q, k, v, need_weights=True, return_lse=True)
    assert out.shape == (q_shape[0], HQ, q_shape[2], DV)
    assert weights.shape == (q_shape[0], HQ, q_shape[2], k_shape[2])
    assert lse.shape == (q_shape[0], HQ, q_shape[2])
    if k_shape[2] == 0:
        assert (out == 0).all()
        assert np.isneginf(lse).all()


# ---- options of attention ---------------------------------------------------

OPTION_CASES = [
    case(
        lambda: attend(dropout_p=1.0),
        named("dropout_p") + r" a probability in \[0, 1\)",
        "dropout_1",
    ),
    case(lambda: attend(dropout_p=1.5), named("dropout_p"), "dropout_1.5"),
    case(lambda: attend(dropout_p=-0.1), named("dropout_p"), "dropout_negative"),
    case(lambda: attend(dropout_p=math.nan), named("dropout_p"), "dropout_nan"),
    case(lambda: attend(scale=math.nan), named("scale"), "scale_nan"),
    case(lambda: attend(scale=math.inf), named("scale"), "scale_inf"),
    case(lambda: attend(scale=-math.inf), named("scale"), "scale_minus_inf"),
    case(lambda: attend(scale=1e300), named("scale"), "scale_beyond_float32"),
    case(lambda: attend(softcap=-1.0), named("softcap"), "softcap_negative"),
    case(lambda: attend(softcap=math.nan), named("softcap"), "softcap_nan"),
    case(lambda: attend(softcap=math.inf), named("softcap"), "softcap_inf"),
    case(lambda: attend(head_mask=np.ones(3, np.float32)), named("head_mask"), "head_mask_3_heads"),
    case(
        lambda: attend(head_mask=np.ones((3, HQ), np.float32)),
        named("head_mask"),
        "head_mask_3_batch",
    ),
    case(
        lambda: attend(head_mask=np.ones((B, HQ, 1), np.float32)),
        named("head_mask"),
        "head_mask_rank3",
    ),
    case(
        lambda: attend(head_mask=np.ones(HQ, np.int64)),
        named("head_mask") + r".*got int64",
        "head_mask_int",
    ),
    case(
        lambda: attend(head_mask=np.ones(HQ, bool)),
        named("head_mask") + r".*got bool",
        "head_mask_bool",
    ),
    case(
        lambda: attend(head_mask=np.array([1, np.nan, 1, 1], np.float32)),
        named("head_mask") + r" finite",
        "head_mask_nan",
    ),
    case(
        lambda: attend(empty_rows="ignore"),
        named("empty_rows") + r'.*"zero".*"nan".*"error"',
        "empty_rows",
    ),
    case(lambda: attend(backend="cuda"), named("backend") + r'.*"auto".*"reference"', "backend"),
    case(
        lambda: attend(mask=ma.key_lengths([0, LK]), empty_rows="error"),
        named("mask") + r" at least one allowed key.*\(b, h, i\) = \(0, 0, 0\)",
        "empty_rows_error_names_the_row",
    ),
]


@pytest.mark.parametrize("fn, match", OPTION_CASES)
def test_bad_attention_options_name_the_option(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


# The message says what to do: wrap the array with keep / block / bias or an adapter.
RAW_MASK = named("mask") + r" a maskattn\.Mask or None.*keep\(\).*block\(\).*bias\(\).*adapter"


@pytest.mark.parametrize(
    "raw",
    [
        np.ones((LQ, LK), bool),
        np.zeros((LQ, LK), np.float32),
        torch.ones(LQ, LK, dtype=torch.bool),
        [[True] * LK] * LQ,
    ],
    ids=["numpy_bool", "numpy_float", "torch_bool", "list"],
)
def test_a_raw_array_as_mask_says_to_use_keep_block_bias_or_an_adapter(raw):
    with pytest.raises(ValueError, match=RAW_MASK):
        attend(mask=raw)


# ---- masks ------------------------------------------------------------------


def q4(length=4):
    return np.ones((1, 1, length, D), np.float32)


MASK_CASES = [
    # Dense masks: dtype, rank, shapes that do not fit the problem.
    case(
        lambda: ma.keep(np.ones((3, 3), np.float32)),
        r"\bkeep: expected dtype bool",
        "keep_float",
    ),
    case(lambda: ma.block(np.ones((3, 3), np.int64)), r"\bblock: expected dtype bool", "block_int"),
    case(
        lambda: ma.bias(np.ones((3, 3), bool)),
        r"\bbias: expected dtype float32 or float64",
        "bias_bool",
    ),
    case(
        lambda: ma.keep(np.ones((1, 1, 1, 3, 3), bool)),
        r"\bkeep: expected rank 1\.\.4",
        "keep_rank5",
    ),
    case(
        lambda: ma.attention(q4(), q4(), q4(), ma.keep(np.ones((3, 3), bool))),
        r"\bmask: keep: expected \(L, S\).*\(1, 1, 4, 4\), got shape \(3, 3\)",
        "keep_3x3_with_L_4",
    ),
    case(
        lambda: ma.block(np.ones((3, 3), bool)).materialize(1, 1, 4, 4),
        r"\bmask: block: expected",
        "block_3x3_materialize_4x4",
    ),
    case(
        lambda: ma.keep(np.ones((2, 3, 3), bool)).materialize(4, 3, 3, 3),
        r"\bmask: keep: expected \(B\*H \| B \| 1, L, S\)",
        "keep_first_dim_neither_bh_nor_b",
    ),
    case(
        lambda: ma.bias(np.array([[0.0, np.nan]], np.float32)),
        r"\bbias: expected finite values.*nan",
        "bias_nan",
    ),
    case(
        lambda: ma.bias(np.array([[0.0, np.inf]], np.float32)),
        r"\bbias: expected finite values.*inf",
        "bias_plus_inf",
    ),
    case(
        lambda: ma.bias(torch.tensor([[0.0, math.nan]])),
        r"\bbias: expected finite values",
        "bias_nan_torch",
    ),
    case(
        lambda: ma.bias(np.array([[0.0, 1e300]])),
        r"\bbias: expected finite values within float32",
        "bias_f64_huge",
    ),
    # Lengths.
    case(lambda: ma.key_lengths([3, -1]), r"lengths\[1\] = -1", "key_lengths_negative"),
    case(
        lambda: attend(mask=ma.key_lengths([3, 7])),
        r"\bmask: key_lengths: expected lengths <= Lk = 6",
        "key_lengths_beyond_lk",
    ),
    case(
        lambda: attend(mask=ma.key_lengths([3])),
        r"\bmask: key_lengths: expected one length per batch",
        "key_lengths_batch",
    ),
    case(
        lambda: ma.key_lengths([3.0, 2.5]),
        named("lengths") + " a rank-1 integer",
        "key_lengths_float_list",
    ),
    case(
        lambda: ma.key_lengths(np.array([3.0, 2.0])),
        named("lengths") + r".*got float64",
        "key_lengths_float_array",
    ),
    case(
        lambda: ma.key_lengths(torch.tensor([3.0])),
        named("lengths") + r".*got float32",
        "key_lengths_float_torch",
    ),
    case(lambda: ma.key_lengths([[3, 2]]), named("lengths") + r" a rank-1", "key_lengths_rank2"),
    case(lambda: ma.query_lengths([-1, 2]), r"lengths\[0\] = -1", "query_lengths_negative"),
    case(
        lambda: attend(mask=ma.query_lengths([9, 2])),
        r"\bmask: query_lengths: expected lengths <= Lq = 5",
        "query_lengths_beyond_lq",
    ),
    case(lambda: ma.query_lengths([1.5]), named("lengths"), "query_lengths_float"),
    # Documents.
    case(
        lambda: ma.documents(np.array([0.0, 0.0, 1.0])),
        named("ids") + r" dtype int32 or int64",
        "documents_float_ids",
    ),
    case(
        lambda: ma.documents(np.array([0, 1]), np.array([0.0, 1.0])),
        named("key_ids") + r" dtype int32",
        "documents_float_key_ids",
    ),
    case(
        lambda: ma.documents(np.zeros((1, 1, 3), np.int64)),
        named("ids") + r" rank 1 \(L\) or rank 2",
        "documents_rank3",
    ),
    case(
        lambda: ma.documents(np.array([0, 0, 1])).materialize(1, 1, 4, 4),
        r"\bmask: documents: expected",
        "documents_wrong_length",
    ),
    # Index parts.
    case(
        lambda: ma.causal("left"),
        named("align") + r'.*"top_left".*"bottom_right"',
        "causal_align",
    ),
    case(lambda: ma.sliding_window(2, 0, "middle"), named("align"), "sliding_window_align"),
    case(lambda: ma.sliding_window(-1), named("left") + r" a width >= 0", "sliding_window_left"),
    case(
        lambda: ma.sliding_window(1, -1),
        named("right") + r" a width >= 0",
        "sliding_window_right",
    ),
    case(lambda: ma.prefix_lm(-1), named("n"), "prefix_lm_negative"),
    case(lambda: ma.prefix_lm(2, "x"), named("align"), "prefix_lm_align"),
    case(lambda: ma.alibi([math.nan]), named("slopes") + r" finite", "alibi_nan"),
    case(lambda: ma.alibi([1.0], "x"), named("align"), "alibi_align"),
    case(lambda: ma.alibi(np.ones((1, 1))), named("slopes") + r" a rank-1", "alibi_rank2"),
    case(
        lambda: ma.alibi([1.0, 0.5]).materialize(1, 3, 2, 2),
        r"\bmask: alibi: expected one slope per head \(H = 3\)",
        "alibi_heads",
    ),
    case(lambda: ma.alibi_slopes(0), named("num_heads"), "alibi_slopes_0"),
    case(lambda: ma.alibi_slopes(-4), named("num_heads"), "alibi_slopes_negative"),
    case(lambda: ma.subsequent_mask(-1), named("size"), "subsequent_mask_negative"),
    case(
        lambda: ma.Mask().materialize(-1, 1, 2, 2),
        r"\bmask shape: expected non-negative",
        "materialize_negative",
    ),
    # Sizes whose product overflows int64 name the argument too.
    case(
        lambda: ma.causal().materialize(2**40, 2**40, 2**40, 2**40),
        r"(mask shape|batch|heads|q_len|k_len): expected",
        "materialize_overflow",
    ),
    case(
        lambda: ma.Mask().materialize(2**40, 2**40, 2**40, 2**40),
        r"(mask shape|batch|heads|q_len|k_len): expected",
        "materialize_overflow_empty_mask",
    ),
    case(lambda: ma.subsequent_mask(2**40), named("size"), "subsequent_mask_overflow"),
    case(
        lambda: ma.sinusoidal_encoding(2**40, 2**40),
        r"(length|dim): expected",
        "sinusoidal_encoding_overflow",
    ),
]


@pytest.mark.parametrize("fn, match", MASK_CASES)
def test_bad_mask_input_names_the_argument(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


# ---- adapters ---------------------------------------------------------------

ADAPTER_CASES = [
    case(
        lambda: ma.from_sdpa_mask(np.ones((LQ, LK), bool), is_causal=True),
        r"from_sdpa_mask: is_causal: expected attn_mask absent",
        "sdpa_mask_and_is_causal",
    ),
    case(
        lambda: ma.from_sdpa_mask(np.ones((LQ, LK), np.int64)),
        named("attn_mask") + r" dtype bool",
        "sdpa_int",
    ),
    case(
        lambda: ma.from_sdpa_mask(np.ones((1, 1, 1, LQ, LK), bool)),
        named("attn_mask") + r" rank 1\.\.4",
        "sdpa_rank5",
    ),
    case(
        lambda: ma.from_sdpa_mask(np.full((LQ, LK), np.nan)),
        named("attn_mask") + r" finite",
        "sdpa_nan",
    ),
    case(
        lambda: ma.from_torch_mha_mask(np.zeros((8, LQ, LK), bool)),
        r"from_torch_mha_mask: num_heads: expected the number of heads",
        "mha_3d_without_num_heads",
    ),
    case(
        lambda: ma.from_torch_mha_mask(np.zeros((8, LQ, LK), bool), num_heads=3),
        named("num_heads") + r" a divisor",
        "mha_num_heads_not_dividing",
    ),
    case(
        lambda: ma.from_torch_mha_mask(np.zeros((8, LQ, LK), bool), num_heads=-2),
        named("num_heads"),
        "mha_num_heads_negative",
    ),
    case(
        lambda: ma.from_torch_mha_mask(np.zeros((LQ, LK), np.int64)),
        named("attn_mask") + r" dtype bool",
        "mha_int",
    ),
    case(
        lambda: ma.from_torch_mha_mask(None, np.zeros((B, LK), np.uint8)),
        named("key_padding_mask") + r" dtype bool",
        "mha_kpm_uint8",
    ),
    case(
        lambda: ma.from_torch_mha_mask(np.full((LQ, LK), np.nan)),
        named("attn_mask") + r" finite",
        "mha_nan",
    ),
    case(
        lambda: ma.from_hf_attention_mask(np.array([[1, 1, 2]])),
        named("attention_mask") + r" values 0 or 1.*got 2",
        "hf_2d_value_2",
    ),
    case(
        lambda: ma.from_hf_attention_mask(np.array([[1.0, 1.0, 0.5]])),
        named("attention_mask") + r" values 0 or 1.*got 0\.5",
        "hf_2d_value_half",
    ),
    case(
        lambda: ma.from_hf_attention_mask(np.array([[1, 1, -1]])),
        named("attention_mask") + r" values 0 or 1",
        "hf_2d_value_minus_1",
    ),
    case(
        lambda: ma.from_hf_attention_mask(np.ones((2, LQ, LK), np.int64)),
        named("attention_mask") + r" rank 2",
        "hf_rank3",
    ),
    case(
        lambda: ma.from_hf_attention_mask(np.full((2, 1, LQ, LK), np.nan)),
        named("attention_mask") + r" finite",
        "hf_4d_nan",
    ),
    case(
        lambda: ma.from_hf_attention_mask(np.zeros((B, 2, LQ, LK))).materialize(B, 4, LQ, LK),
        r"\bmask: from_hf_attention_mask: attention_mask: expected",
        "hf_4d_heads_do_not_fit",
    ),
    case(
        lambda: ma.from_keras_mask(np.full((B, LQ, LK), 2)),
        named("attention_mask") + r" values 0 or 1",
        "keras_value_2",
    ),
    case(
        lambda: ma.from_keras_mask(np.ones((LQ, LK))),
        named("attention_mask") + r" rank 3",
        "keras_rank2",
    ),
    case(
        lambda: ma.from_onnx_attention_mask(np.ones((1, 1, 1, LQ, LK), bool)),
        named("attn_mask") + r" rank 1\.\.4",
        "onnx_rank5",
    ),
    case(
        lambda: ma.from_onnx_attention_mask(np.ones((LQ, LK), np.int64)),
        named("attn_mask") + r" dtype bool",
        "onnx_int",
    ),
    case(
        lambda: ma.from_onnx_attention_mask(np.full((LQ, LK), np.inf)),
        named("attn_mask") + r" finite",
        "onnx_plus_inf",
    ),
]


@pytest.mark.parametrize("fn, match", ADAPTER_CASES)
def test_bad_adapter_input_names_the_argument(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


# ---- predicate: the rule is Python code --------------------------------------


def test_predicate_of_a_non_callable_is_a_type_error():
    # docs/python.md: arguments of the wrong Python type raise TypeError.
    with pytest.raises(TypeError):
        ma.predicate(3)


def test_predicate_exception_propagates_unchanged():
    def rule(b, h, i, j):
        raise ZeroDivisionError("from the rule")

    with pytest.raises(ZeroDivisionError, match="from the rule"):
        ma.predicate(rule).materialize(1, 1, 2, 2)


def test_predicate_returning_no_bool_names_the_predicate():
    # A rule that returns a str is a bad rule: the error must say so in
    # Python's terms (TypeError or ValueError naming the predicate), not as a
    # C++ cast failure.
    with pytest.raises((TypeError, ValueError), match=r"predicate|\bfn\b"):
        ma.predicate(lambda b, h, i, j: "yes").materialize(1, 1, 2, 2)


def test_predicate_returning_numpy_bool_is_read_as_bool():
    # A rule that looks its answer up in a numpy array returns numpy.bool_.
    allowed = np.tril(np.ones((3, 3), bool))
    got = ma.predicate(lambda b, h, i, j: allowed[i, j]).materialize(1, 1, 3, 3)
    np.testing.assert_array_equal(got[0, 0], neg_inf_where_blocked(allowed))


# ---- mlm_mask ---------------------------------------------------------------

MLM_CASES = [
    case(
        lambda: mlm(mlm_probability=1.5),
        named("mlm_probability") + r" a probability in \[0, 1\]",
        "mlm_p_above_1",
    ),
    case(lambda: mlm(mlm_probability=-0.1), named("mlm_probability"), "mlm_p_negative"),
    case(lambda: mlm(mlm_probability=math.nan), named("mlm_probability"), "mlm_p_nan"),
    case(lambda: mlm(mask_replace_prob=1.2), named("mask_replace_prob"), "mask_replace_above_1"),
    case(lambda: mlm(mask_replace_prob=-0.5), named("mask_replace_prob"), "mask_replace_negative"),
    case(
        lambda: mlm(random_replace_prob=-0.1),
        named("random_replace_prob"),
        "random_replace_negative",
    ),
    case(
        lambda: mlm(random_replace_prob=math.nan),
        named("random_replace_prob"),
        "random_replace_nan",
    ),
    case(
        lambda: mlm(mask_replace_prob=0.8, random_replace_prob=0.3),
        named("random_replace_prob") + r" mask_replace_prob \+ random_replace_prob <= 1",
        "replace_sum_above_1",
    ),
    case(
        lambda: mlm(np.array([[5, 10]])),
        r"token_ids\[0, 1\]: expected an id in \[0, vocab_size = 10\)",
        "token_id_vocab",
    ),
    case(
        lambda: mlm(np.array([[5, -1]])),
        r"token_ids\[0, 1\]: expected an id",
        "token_id_negative",
    ),
    case(lambda: mlm(np.array([5, 99])), r"token_ids\[0, 1\]: expected an id", "token_id_one_row"),
    case(
        lambda: mlm(mask_token_id=10),
        named("mask_token_id") + r" an id in \[0, vocab_size = 10\)",
        "mask_token_id_vocab",
    ),
    case(lambda: mlm(mask_token_id=-1), named("mask_token_id"), "mask_token_id_negative"),
    case(
        lambda: mlm(vocab_size=0, mask_token_id=0, special_token_ids=()),
        named("vocab_size"),
        "vocab_size_0",
    ),
    case(
        lambda: mlm(special_token_ids=(0, 12)),
        r"special_token_ids\[1\]: expected an id",
        "special_id_vocab",
    ),
    case(
        lambda: mlm(special_token_ids=(-1,)),
        r"special_token_ids\[0\]: expected an id",
        "special_id_negative",
    ),
    case(
        lambda: mlm(TOKENS.astype(np.float64)),
        named("token_ids") + r" an integer array",
        "token_ids_float",
    ),
    case(lambda: mlm(TOKENS > 2), named("token_ids") + r" an integer array", "token_ids_bool"),
    case(
        lambda: mlm(TOKENS[None]),
        named("token_ids") + r" an integer array of rank 2",
        "token_ids_rank3",
    ),
    case(
        lambda: mlm(word_ids=np.zeros(TOKENS.shape, np.float64)),
        named("word_ids") + r" an integer array",
        "word_ids_float",
    ),
    case(
        lambda: mlm(word_ids=np.full(TOKENS.shape, -2)),
        r"word_ids\[0, 0\]: expected a word index",
        "word_ids_below_minus_1",
    ),
    # word_ids must have the shape of token_ids (here one column more, so a
    # missing check cannot read outside the array).
    case(
        lambda: mlm(word_ids=np.zeros((1, TOKENS.shape[1] + 1), np.int64)),
        named("word_ids"),
        "word_ids_longer_row",
    ),
    case(
        lambda: mlm(word_ids=np.zeros((2, TOKENS.shape[1]), np.int64)),
        named("word_ids"),
        "word_ids_more_rows",
    ),
]


@pytest.mark.parametrize("fn, match", MLM_CASES)
def test_bad_mlm_input_names_the_argument(fn, match):
    with pytest.raises(ValueError, match=match):
        fn()


# ---- large magnitudes: finite and right, never NaN ---------------------------


def causal_with_lengths(lq: int, lk: int, lengths) -> np.ndarray:
    """Additive (B, 1, Lq, Lk) mask: j <= i and j < lengths[b] (rule written here)."""
    i = np.arange(lq)[:, None]
    j = np.arange(lk)[None, :]
    allowed = np.stack([(j <= i) & (j < n) for n in lengths])[:, None]
    return neg_inf_where_blocked(allowed)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("qk_scale, v_scale", [(1e4, 1.0), (1e4, 1e4), (1e18, 1.0)])
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "causal_and_lengths"])
def test_large_magnitude_inputs_give_finite_results_equal_to_the_oracle(
    rng, backend, qk_scale, v_scale, masked
):
    b, hq, hkv, lq, lk, d, dv = 2, 4, 2, 7, 9, 16, 5
    q = (randn(rng, b, hq, lq, d) * qk_scale).astype(np.float32)
    k = (randn(rng, b, hkv, lk, d) * qk_scale).astype(np.float32)
    v = (randn(rng, b, hkv, lk, dv) * v_scale).astype(np.float32)
    lengths = [lk, 0]  # batch 1: every row empty (zeros, lse -inf), never NaN
    mask = ma.causal() & ma.key_lengths(lengths) if masked else None
    oracle_mask = causal_with_lengths(lq, lk, lengths) if masked else None

    out, weights, lse = ma.attention(
        q, k, v, mask, need_weights=True, return_lse=True, backend=backend
    )
    ref_out, ref_w, ref_lse = attention_f64(q, k, v, oracle_mask)

    assert not np.isnan(out).any() and not np.isnan(weights).any() and not np.isnan(lse).any()
    assert np.isfinite(out).all() and np.isfinite(weights).all()
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=OUT_ATOL * v_scale)
    np.testing.assert_allclose(weights, ref_w, rtol=0, atol=WEIGHTS_ATOL)
    # lse is of the scores' magnitude: compare relative to it; empty rows -inf.
    empty = np.isneginf(ref_lse)
    np.testing.assert_array_equal(np.isneginf(lse), empty)
    assert np.isfinite(lse[~empty]).all()
    lse_scale = max(1.0, np.abs(ref_lse[~empty]).max())
    np.testing.assert_allclose(lse[~empty], ref_lse[~empty], rtol=0, atol=LSE_ATOL * lse_scale)


def test_negative_scale_is_a_valid_scale_as_in_pytorch(rng):
    # attention.hpp asks only for a finite scale, as
    # F.scaled_dot_product_attention does: a negative one is computed, not refused.
    q, k, v = randn(rng, 1, 2, 4, 8), randn(rng, 1, 2, 5, 8), randn(rng, 1, 2, 5, 3)
    out = ma.attention(q, k, v, scale=-0.5)
    ref_out, _, _ = attention_f64(q, k, v, scale=-0.5)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=OUT_ATOL)
