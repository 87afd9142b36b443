"""MATRIX rows of the modules, the models, training (ma.optim) and pictures (ma.viz)."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np

import maskattn as ma
from bad_input_matrix import (
    TINY_BERT,
    Arr,
    Entry,
    assert_same,
    assert_shape,
    cases,
    entry,
    err,
    err_re,
    ids,
    ok,
    randn,
    type_err,
)

B, L, S, E, HEADS = 2, 3, 4, 8, 2
HUGE = 2**40
BEYOND_INT64 = 2**70


def _eval(module):
    module.eval()
    module.seed(0)
    return module


def _fresh(make):
    """make, each time with the parameters of its first result (they are drawn at random)."""
    state = {k: v.copy() for k, v in make().state_dict().items()}

    def build():
        module = make()
        module.load_state_dict(state)
        return module

    return build


def _module_call_rows(name, make, input_shape, fixed_width=True):
    """__call__ and forward_backward of a one-input module (Linear, LayerNorm, ...)."""
    make = _fresh(make)
    x = randn(*input_shape)
    model = make()
    out = model(x)
    g = randn(*np.shape(out), seed=4)
    entry(f"ma.{name}.__call__", Entry(
        lambda **a: model(a["input"]),
        {"input": Arr(x, ranks=(0,))},
        [
            *([err("last_dim_mismatch", lambda: model(x[..., :-1]), "input")] if fixed_width else
              [ok("any_width", lambda: model(x[..., :-1]), assert_shape(x[..., :-1].shape))]),
            ok("empty_batch", lambda: model(x[:0]), assert_shape((0,) + np.shape(out)[1:])),
        ],
    ))
    entry(f"ma.{name}.forward_backward", Entry(
        lambda **a: make().forward_backward(a["input"], a["grad_output"]),
        {"input": Arr(x, ranks=(0,)), "grad_output": Arr(g, ranks=(len(np.shape(out)) + 1,))},
        [
            err("grad_output_shape_mismatch",
                lambda: make().forward_backward(x, g[..., :-1]), "grad_output"),
        ],
    ))


# ---- Module (the base methods, on a Linear) -------------------------------------------

LIN = ma.Linear(4, 3)
cases(
    "ma.Module",
    type_err("not_constructible", lambda: ma.Module()),
)
entry("ma.Module.load_state_dict", Entry(
    lambda **a: ma.Linear(4, 3).load_state_dict({"weight": a["weight"], "bias": np.zeros(3,
                                                                                       np.float32)}),
    {"weight": Arr(randn(3, 4), kind="float", ranks=(1, 3), message='state_dict["weight"]')},
    [
        err("weight_shape_mismatch",
            lambda: ma.Linear(4, 3).load_state_dict({"weight": randn(4, 3), "bias": randn(3)}),
            'state_dict["weight"]'),
        err("weight_nan",
            lambda: ma.Linear(4, 3).load_state_dict(
                {"weight": np.full((3, 4), np.nan, np.float32), "bias": randn(3)}),
            'state_dict["weight"]'),
        ok("unknown_key_not_strict",
           lambda: ma.Linear(4, 3).load_state_dict({"extra": randn(2)}, strict=False),
           lambda r: assert_same((sorted(r[0]), list(r[1])), (["bias", "weight"], ["extra"]))),
        err_re("unknown_key_strict", lambda: ma.Linear(4, 3).load_state_dict({"extra": randn(2)}),
               r"state_dict.*expected"),
        type_err("not_a_dict", lambda: ma.Linear(4, 3).load_state_dict([randn(3, 4)]),
                 r"state_dict"),
        type_err("key_not_str", lambda: ma.Linear(4, 3).load_state_dict({0: randn(3, 4)}),
                 r"state_dict"),
    ],
))
cases(
    "ma.Module.state_dict",
    ok("names_and_shapes", lambda: {k: v.shape for k, v in LIN.state_dict().items()},
       lambda r: assert_same(r, {"weight": (3, 4), "bias": (3,)})),
)
cases(
    "ma.Module.train",
    ok("train_false", lambda: ma.Linear(2, 2).train(False).training,
       lambda r: assert_same(r, False)),
    type_err("mode_str", lambda: ma.Linear(2, 2).train("no")),
)
cases(
    "ma.Module.eval",
    ok("eval", lambda: ma.Linear(2, 2).eval().training, lambda r: assert_same(r, False)),
)
cases(
    "ma.Module.seed",
    ok("same_seed_same_dropout",
       lambda: (_seeded(5), _seeded(5)), lambda r: assert_same(r[0], r[1])),
    type_err("seed_negative", lambda: ma.Linear(2, 2).seed(-1)),
    type_err("seed_beyond_uint64", lambda: ma.Linear(2, 2).seed(2**64)),
)


def _seeded(seed):
    m = ma.Dropout(0.5)  # train mode: the pattern comes from the seed
    m.seed(seed)
    return m(np.ones((4, 8), np.float32))


cases(
    "ma.Module.num_parameters",
    ok("linear", lambda: ma.Linear(4, 3).num_parameters(), lambda r: assert_same(r, 15)),
)

# ---- the small modules -------------------------------------------------------------------

cases(
    "ma.Linear",
    err_re("zero_in_features", lambda: ma.Linear(0, 3), r"(Linear|in_features): expected"),
    err_re("negative", lambda: ma.Linear(-1, 3), r"(Linear|in_features): expected"),
    err("overflow", lambda: ma.Linear(HUGE, HUGE), "Linear: in_features * out_features"),
    type_err("beyond_int64", lambda: ma.Linear(BEYOND_INT64, 3)),
    type_err("float", lambda: ma.Linear(2.5, 3)),
)
_module_call_rows("Linear", lambda: ma.Linear(4, 3), (B, L, 4))

cases(
    "ma.LayerNorm",
    ok("shape_list", lambda: ma.LayerNorm([4]).num_parameters(), lambda r: assert_same(r, 8)),
    err("shape_two_dims", lambda: ma.LayerNorm([2, 4]), "normalized_shape"),
    err("shape_none", lambda: ma.LayerNorm(None), "normalized_shape"),
    err("shape_str", lambda: ma.LayerNorm("four"), "normalized_shape"),
    err("shape_dict", lambda: ma.LayerNorm({"a": 4}), "normalized_shape"),
    err("shape_float_list", lambda: ma.LayerNorm([4.0]), "normalized_shape"),
    err_re("zero", lambda: ma.LayerNorm(0), r"(LayerNorm|normalized_shape): expected"),
    err_re("eps_nan", lambda: ma.LayerNorm(4, eps=math.nan), r"(LayerNorm|eps): expected"),
    err_re("eps_negative", lambda: ma.LayerNorm(4, eps=-1.0), r"(LayerNorm|eps): expected"),
)
_module_call_rows("LayerNorm", lambda: ma.LayerNorm(4), (B, L, 4))

cases(
    "ma.Dropout",
    err_re("p_1_5", lambda: ma.Dropout(1.5), r"(Dropout|p): expected"),
    err_re("p_nan", lambda: ma.Dropout(math.nan), r"(Dropout|p): expected"),
    ok("p_0_is_identity", lambda: ma.Dropout(0.0)(np.ones((2, 2), np.float32)),
       lambda r: assert_same(r, np.ones((2, 2), np.float32))),
)
_module_call_rows("Dropout", lambda: _eval(ma.Dropout(0.5)), (B, L, 4), fixed_width=False)

cases(
    "ma.FeedForward",
    err("activation_unknown", lambda: ma.FeedForward(4, 8, activation="tanh"), "activation"),
    err_re("zero", lambda: ma.FeedForward(0, 8), r"FeedForward: expected d_model >= 1"),
    err_re("zero_ff", lambda: ma.FeedForward(8, 0), r"FeedForward: expected d_model >= 1"),
    err_re("dropout_negative", lambda: ma.FeedForward(4, 8, dropout=-0.5),
           r"(FeedForward|dropout|p): expected"),
)
_module_call_rows("FeedForward", lambda: _eval(ma.FeedForward(4, 8)), (B, L, 4))

TOK = ids(B, L, high=10)
EMB = ma.Embedding(10, 4, padding_idx=0)
FRESH_EMB = _fresh(lambda: ma.Embedding(10, 4))
cases(
    "ma.Embedding",
    err_re("padding_idx_out_of_range", lambda: ma.Embedding(10, 4, padding_idx=10),
           r"(Embedding|padding_idx): expected"),
    err_re("zero_embeddings", lambda: ma.Embedding(0, 4), r"(Embedding|num_embeddings): expected"),
    err("overflow", lambda: ma.Embedding(HUGE, HUGE), "Embedding: num_embeddings * embedding_dim"),
    ok("negative_padding_idx_counts_from_the_end", lambda: ma.Embedding(10, 4, padding_idx=-1),
       lambda m: assert_same(m.state_dict()["weight"][9], np.zeros(4, np.float32))),
)
entry("ma.Embedding.__call__", Entry(
    lambda **a: EMB(a["input"]),
    {"input": Arr(TOK, kind="int")},
    [
        err("id_out_of_range", lambda: EMB(TOK + 10), "input (flattened)"),
        err("id_negative", lambda: EMB(-TOK - 1), "input (flattened)"),
        ok("scalar_id_as_torch", lambda: EMB(np.int64(3)), assert_shape((4,))),
        ok("empty_batch", lambda: EMB(TOK[:0]), assert_shape((0, L, 4))),
    ],
))
entry("ma.Embedding.forward_backward", Entry(
    lambda **a: FRESH_EMB().forward_backward(a["input"], a["grad_output"]),
    {"input": Arr(TOK, kind="int"), "grad_output": Arr(randn(B, L, 4), ranks=(2, 4))},
    [
        err("id_out_of_range",
            lambda: FRESH_EMB().forward_backward(TOK + 10, randn(B, L, 4)), "input (flattened)"),
        err("grad_output_shape_mismatch",
            lambda: FRESH_EMB().forward_backward(TOK, randn(B, L, 3)), "grad_output"),
    ],
))
entry("ma.Embedding.unembed", Entry(
    lambda **a: EMB.unembed(a["input"]),
    {"input": Arr(randn(B, L, 4), ranks=(0,))},
    [err("last_dim_mismatch", lambda: EMB.unembed(randn(B, L, 3)), "input")],
))
entry("ma.Embedding.unembed_forward_backward", Entry(
    lambda **a: FRESH_EMB().unembed_forward_backward(a["input"], a["grad_output"]),
    {"input": Arr(randn(B, L, 4), ranks=(0,)), "grad_output": Arr(randn(B, L, 10), ranks=(2,))},
    [
        err("grad_output_shape_mismatch",
            lambda: FRESH_EMB().unembed_forward_backward(randn(B, L, 4), randn(B, L, 9)),
            "grad_output"),
    ],
))

PE = _eval(ma.PositionalEncoding(4, max_len=8))
X_PE = randn(L, B, 4)
cases(
    "ma.PositionalEncoding",
    err("odd_d_model", lambda: ma.PositionalEncoding(5), "d_model"),
    err("max_len_negative", lambda: ma.PositionalEncoding(4, max_len=-1), "max_len"),
    err_re("overflow", lambda: ma.PositionalEncoding(HUGE, max_len=HUGE),
           r"(PositionalEncoding|d_model|max_len|length|dim): expected"),
)
entry("ma.PositionalEncoding.__call__", Entry(
    lambda **a: PE(a["x"]),
    {"x": Arr(X_PE, ranks=(2, 4))},
    [
        err_re("beyond_max_len", lambda: PE(randn(9, B, 4)),
               r"PositionalEncoding: offset: expected offset \+ length <= max_len = 8 "
               r"\(length 9\)"),
        err_re("offset_beyond_max_len", lambda: PE(X_PE, offset=6), r"(x|offset): expected"),
        err("offset_negative", lambda: PE(X_PE, offset=-1), "offset"),
        err("d_model_mismatch", lambda: PE(randn(L, B, 3)), "x"),
    ],
))
entry("ma.PositionalEncoding.forward_backward", Entry(
    lambda **a: _eval(ma.PositionalEncoding(4, max_len=8)).forward_backward(a["x"],
                                                                             a["grad_output"]),
    {"x": Arr(X_PE, ranks=(1,)), "grad_output": Arr(randn(L, B, 4, seed=5), ranks=(2,))},
    [
        err("grad_output_shape_mismatch",
            lambda: PE.forward_backward(X_PE, randn(L, B, 3)), "grad_output"),
    ],
))

# ---- attention modules ------------------------------------------------------------------

FRESH_MHA = _fresh(lambda: _eval(ma.MultiheadAttention(E, HEADS)))
MHA = FRESH_MHA()
QM, KM = randn(L, B, E), randn(S, B, E, seed=1)
KPM = np.zeros((B, S), bool)
AM = np.zeros((L, S), bool)
cases(
    "ma.MultiheadAttention",
    err_re("heads_not_dividing", lambda: ma.MultiheadAttention(E, 3),
           r"(MultiheadAttention|num_heads|embed_dim): expected"),
    err_re("zero_heads", lambda: ma.MultiheadAttention(E, 0),
           r"(MultiheadAttention|num_heads): expected"),
    err_re("kv_heads_not_dividing", lambda: ma.MultiheadAttention(E, 2, num_kv_heads=3),
           r"num_kv_heads: expected"),
    err_re("dropout_1", lambda: ma.MultiheadAttention(E, 2, dropout=1.0),
           r"(MultiheadAttention|dropout): expected"),
    err_re("kdim_negative", lambda: ma.MultiheadAttention(E, 2, kdim=-1),
           r"MultiheadAttention: kdim, vdim: expected"),
)
entry("ma.MultiheadAttention.__call__", Entry(
    lambda **a: MHA(**a),
    {"query": Arr(QM, ranks=(1, 4)), "key": Arr(KM, ranks=(1, 4)), "value": Arr(KM, ranks=(1, 4)),
     "key_padding_mask": Arr(KPM, kind="mask", ranks=(3,), required=False),
     "attn_mask": Arr(AM, kind="mask", ranks=(1, 4), required=False),
     "head_mask": Arr(np.ones(HEADS, np.float32), kind="any", ranks=(3,), required=False)},
    [
        err("embed_dim_mismatch", lambda: MHA(QM[..., :4], KM, KM), "query"),
        err("batch_mismatch", lambda: MHA(QM, KM[:, :1], KM[:, :1]), "key"),
        err("value_length_mismatch", lambda: MHA(QM, KM, KM[:2]), "value"),
        err("attn_mask_shape", lambda: MHA(QM, KM, KM, attn_mask=np.zeros((2, 2), bool)),
            "attn_mask"),
        err("key_padding_mask_shape",
            lambda: MHA(QM, KM, KM, key_padding_mask=np.zeros((B, 2), bool)), "key_padding_mask"),
        err("attn_mask_nan",
            lambda: MHA(QM, KM, KM, attn_mask=np.full((L, S), np.nan, np.float32)), "attn_mask"),
        ok("mask_object", lambda: MHA(QM, KM, KM, attn_mask=ma.Mask())[0],
           lambda r: assert_same(r, MHA(QM, KM, KM)[0])),
        ok("empty_batch", lambda: MHA(QM[:, :0], KM[:, :0], KM[:, :0])[0],
           assert_shape((L, 0, E))),
        type_err("is_causal_str", lambda: MHA(QM, KM, KM, is_causal="yes")),
    ],
))
entry("ma.MultiheadAttention.forward_backward", Entry(
    lambda **a: FRESH_MHA().forward_backward(**a),
    {"query": Arr(QM, ranks=(1,)), "key": Arr(KM, ranks=(1,)), "value": Arr(KM, ranks=(1,)),
     "grad_output": Arr(randn(L, B, E, seed=6), ranks=(1,))},
    [
        err("grad_output_shape_mismatch",
            lambda: MHA.forward_backward(QM, KM, KM, randn(L, B, 4)), "grad_output"),
    ],
))

SRC, TGT = randn(S, B, E), randn(L, B, E, seed=2)


def _layer_kw():
    return dict(dim_feedforward=16, dropout=0.0)


ENC_LAYER = _eval(ma.TransformerEncoderLayer(E, HEADS, **_layer_kw()))
DEC_LAYER = _eval(ma.TransformerDecoderLayer(E, HEADS, **_layer_kw()))
ENC = _eval(ma.TransformerEncoder(ma.TransformerEncoderLayer(E, HEADS, **_layer_kw()), 2))
DEC = _eval(ma.TransformerDecoder(ma.TransformerDecoderLayer(E, HEADS, **_layer_kw()), 2))
TR = _eval(ma.Transformer(E, HEADS, 1, 1, 16, 0.0))

for _cls in ("TransformerEncoderLayer", "TransformerDecoderLayer"):
    cases(
        f"ma.{_cls}",
        err_re("heads_not_dividing", lambda c=_cls: getattr(ma, c)(E, 3),
               r"MultiheadAttention: expected embed_dim >= 1 divisible by num_heads"),
        err("activation_unknown", lambda c=_cls: getattr(ma, c)(E, 2, activation="swish"),
            "activation"),
        err_re("eps_nan", lambda c=_cls: getattr(ma, c)(E, 2, layer_norm_eps=math.nan),
               r"(eps|layer_norm_eps|LayerNorm): expected"),
    )
cases(
    "ma.TransformerEncoder",
    # torch.nn.TransformerEncoder(layer, 0) is the identity (norm None): so is this.
    ok("zero_layers_is_the_identity", lambda: ma.TransformerEncoder(ENC_LAYER, 0)(SRC),
       lambda r: assert_same(r, SRC)),
    type_err("layer_of_another_kind", lambda: ma.TransformerEncoder(DEC_LAYER, 1)),
)
cases(
    "ma.TransformerDecoder",
    err_re("negative_layers", lambda: ma.TransformerDecoder(DEC_LAYER, -1),
           r"(TransformerDecoder|num_layers): expected"),
    type_err("norm_of_another_kind", lambda: ma.TransformerDecoder(DEC_LAYER, 1, norm=ENC_LAYER)),
)
cases(
    "ma.Transformer",
    err_re("heads_not_dividing", lambda: ma.Transformer(E, 3, 1, 1, 16),
           r"MultiheadAttention: expected embed_dim >= 1 divisible by num_heads"),
    err("activation_unknown", lambda: ma.Transformer(E, 2, 1, 1, 16, activation="x"),
        "activation"),
)
cases(
    "ma.Transformer.generate_square_subsequent_mask",
    ok("3", lambda: ma.Transformer.generate_square_subsequent_mask(3),
       lambda r: assert_same(r, np.triu(np.full((3, 3), -np.inf, np.float32), 1))),
    ok("0", lambda: ma.Transformer.generate_square_subsequent_mask(0), assert_shape((0, 0))),
    err("negative", lambda: ma.Transformer.generate_square_subsequent_mask(-1), "sz"),
    err_re("overflow", lambda: ma.Transformer.generate_square_subsequent_mask(2**32),
           r"(sz|size): expected"),
)


def _encoder_rows(name, module, fresh):
    src_mask_name = "src_mask" if "Layer" in name else "mask"
    entry(f"ma.{name}.__call__", Entry(
        lambda **a: module(**a),
        {"src": Arr(SRC, ranks=(1, 4)),
         src_mask_name: Arr(np.zeros((S, S), bool), kind="mask", ranks=(1, 4), required=False),
         "src_key_padding_mask": Arr(np.zeros((B, S), bool), kind="mask", ranks=(3,),
                                     required=False)},
        [
            err("d_model_mismatch", lambda: module(SRC[..., :4]), "src"),
            err(f"{src_mask_name}_shape",
                lambda: module(SRC, **{src_mask_name: np.zeros((2, 2), bool)}), src_mask_name),
            type_err("is_causal_str", lambda: module(SRC, is_causal="yes"), "is_causal"),
            ok("empty_batch", lambda: module(SRC[:, :0]), assert_shape((S, 0, E))),
        ],
    ))
    entry(f"ma.{name}.forward_backward", Entry(
        lambda **a: fresh().forward_backward(**a),
        {"src": Arr(SRC, ranks=(1,)), "grad_output": Arr(randn(S, B, E, seed=7), ranks=(1,))},
        [err("grad_output_shape_mismatch",
             lambda: fresh().forward_backward(SRC, randn(S, B, 4)), "grad_output")],
    ))


def _decoder_rows(name, module, fresh):
    entry(f"ma.{name}.__call__", Entry(
        lambda **a: module(**a),
        {"tgt": Arr(TGT, ranks=(1, 4)), "memory": Arr(SRC, ranks=(1, 4)),
         "tgt_mask": Arr(np.zeros((L, L), bool), kind="mask", ranks=(1,), required=False),
         "memory_mask": Arr(np.zeros((L, S), bool), kind="mask", ranks=(1,), required=False),
         "memory_key_padding_mask": Arr(np.zeros((B, S), bool), kind="mask", ranks=(3,),
                                        required=False)},
        [
            err("batch_mismatch", lambda: module(TGT, SRC[:, :1]), "memory"),
            err("memory_mask_shape", lambda: module(TGT, SRC, memory_mask=np.zeros((L, L), bool)),
                "memory_mask"),
            type_err("tgt_is_causal_str", lambda: module(TGT, SRC, tgt_is_causal=1.0),
                     "tgt_is_causal"),
        ],
    ))
    entry(f"ma.{name}.forward_backward", Entry(
        lambda **a: fresh().forward_backward(**a),
        {"tgt": Arr(TGT, ranks=(1,)), "memory": Arr(SRC, ranks=(1,)),
         "grad_output": Arr(randn(L, B, E, seed=8), ranks=(1,))},
        [err("grad_output_shape_mismatch",
             lambda: fresh().forward_backward(TGT, SRC, randn(L, B, 4)), "grad_output")],
    ))


_encoder_rows("TransformerEncoderLayer", ENC_LAYER,
              _fresh(lambda: _eval(ma.TransformerEncoderLayer(E, HEADS, **_layer_kw()))))
_encoder_rows("TransformerEncoder", ENC, lambda: ENC)
_decoder_rows("TransformerDecoderLayer", DEC_LAYER,
              _fresh(lambda: _eval(ma.TransformerDecoderLayer(E, HEADS, **_layer_kw()))))
_decoder_rows("TransformerDecoder", DEC, lambda: DEC)
entry("ma.Transformer.__call__", Entry(
    lambda **a: TR(**a),
    {"src": Arr(SRC, ranks=(1, 4)), "tgt": Arr(TGT, ranks=(1, 4)),
     "src_key_padding_mask": Arr(np.zeros((B, S), bool), kind="mask", required=False),
     "tgt_mask": Arr(np.zeros((L, L), bool), kind="mask", required=False)},
    [
        err("batch_mismatch", lambda: TR(SRC, TGT[:, :1]), "tgt"),
        type_err("src_is_causal_str", lambda: TR(SRC, TGT, src_is_causal="no"), "src_is_causal"),
    ],
))
entry("ma.Transformer.forward_backward", Entry(
    lambda **a: TR.forward_backward(**a),
    {"src": Arr(SRC, ranks=(1,)), "tgt": Arr(TGT, ranks=(1,)),
     "grad_output": Arr(randn(L, B, E, seed=9), ranks=(1,))},
    [err("grad_output_shape_mismatch",
         lambda: TR.forward_backward(SRC, TGT, randn(L, B, 4)), "grad_output")],
))

# ---- BertModel, SentenceEncoder, WordPieceTokenizer ----------------------------------------

BERT = ma.BertModel.from_pretrained(TINY_BERT)
BERT_IDS = ids(2, 5, high=48)
BERT_AM = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int64)
cases(
    "ma.BertModel",
    type_err("not_constructible_directly", lambda: ma.BertModel()),
)
cases(
    "ma.BertModel.from_pretrained",
    err_re("missing_folder", lambda: ma.BertModel.from_pretrained("/nonexistent"),
           r"/nonexistent.*expected"),
    err_re("not_a_model_folder", lambda: ma.BertModel.from_pretrained(TINY_BERT / "1_Pooling"),
           r"1_Pooling.*expected"),
    type_err("folder_none", lambda: ma.BertModel.from_pretrained(None)),
)
entry("ma.BertModel.__call__", Entry(
    lambda **a: BERT(**a),
    {"input_ids": Arr(BERT_IDS, kind="int", ranks=(1, 3)),
     "attention_mask": Arr(BERT_AM, kind="any", ranks=(1, 3), required=False),
     "token_type_ids": Arr(np.zeros((2, 5), np.int64), kind="int", ranks=(1, 3), required=False),
     "position_ids": Arr(np.arange(5)[None].repeat(2, 0), kind="int", ranks=(3,),
                         required=False)},
    [
        err("id_out_of_range", lambda: BERT(BERT_IDS + 48), "input_ids"),
        err("id_negative", lambda: BERT(-BERT_IDS - 1), "input_ids"),
        err("beyond_max_positions", lambda: BERT(ids(1, 17, high=48)), "input_ids"),
        err("token_type_out_of_range", lambda: BERT(BERT_IDS, token_type_ids=BERT_IDS * 0 + 2),
            "token_type_ids"),
        err("position_out_of_range", lambda: BERT(BERT_IDS, position_ids=BERT_IDS * 0 + 16),
            "position_ids"),
        err("attention_mask_shape", lambda: BERT(BERT_IDS, BERT_AM[:, :3]), "attention_mask"),
        err("attention_mask_value_2", lambda: BERT(BERT_IDS, BERT_AM * 2), "attention_mask"),
        err("mask_raw_array", lambda: BERT(BERT_IDS, mask=np.ones((5, 5), bool)), "mask"),
        ok("empty_batch", lambda: BERT(BERT_IDS[:0]), assert_shape((0, 5, 16))),
    ],
))
entry("ma.BertModel.pool", Entry(
    lambda **a: BERT.pool(**a),
    {"last_hidden_state": Arr(randn(2, 5, 16), ranks=(2, 4))},
    [err("hidden_mismatch", lambda: BERT.pool(randn(2, 5, 8)), "last_hidden_state")],
))

ENCODER = ma.SentenceEncoder(TINY_BERT)
cases(
    "ma.SentenceEncoder",
    err_re("missing_folder", lambda: ma.SentenceEncoder("/nonexistent"),
           r"model folder: expected .*, got /nonexistent"),
    type_err("folder_int", lambda: ma.SentenceEncoder(3)),
)
cases(
    "ma.SentenceEncoder.encode",
    ok("two", lambda: ENCODER.encode(["a b", "b"]), assert_shape((2, 16))),
    ok("empty_batch", lambda: ENCODER.encode([]), assert_shape((0, 16))),
    ok("empty_sentence", lambda: ENCODER.encode([""]), assert_shape((1, 16))),
    err("batch_size_0", lambda: ENCODER.encode(["a"], batch_size=0), "batch_size"),
    type_err("str_not_list", lambda: ENCODER.encode(None)),
    type_err("lone_surrogate", lambda: ENCODER.encode(["\udcff"])),
)
cases(
    "ma.SentenceEncoder.tokenize",
    ok("empty", lambda: ENCODER.tokenize(""), lambda r: assert_same(len(r), 2)),
    type_err("none", lambda: ENCODER.tokenize(None)),
)

TOKENIZER = ma.WordPieceTokenizer(TINY_BERT)
cases(
    "ma.WordPieceTokenizer",
    err_re("missing_folder", lambda: ma.WordPieceTokenizer("/nonexistent"),
           r"/nonexistent.*expected"),
    type_err("folder_none", lambda: ma.WordPieceTokenizer(None)),
)
cases(
    "ma.WordPieceTokenizer.encode",
    ok("empty", lambda: TOKENIZER.encode(""), lambda r: assert_same(len(r), 2)),
    err("max_length_1", lambda: TOKENIZER.encode("a", max_length=1), "max_length"),
    err("max_length_negative", lambda: TOKENIZER.encode("a", max_length=-1), "max_length"),
    type_err("none", lambda: TOKENIZER.encode(None)),
)
cases(
    "ma.WordPieceTokenizer.tokenize",
    ok("empty", lambda: TOKENIZER.tokenize(""), lambda r: assert_same(r, ())),
    ok("lone_surrogate_is_a_unicode_error",
       lambda: _raises(UnicodeEncodeError, lambda: TOKENIZER.tokenize("\udcff")),
       lambda r: assert_same(r, True)),
)
cases(
    "ma.WordPieceTokenizer.token_to_id",
    ok("unknown_is_none", lambda: TOKENIZER.token_to_id("no-such-token"),
       lambda r: assert_same(r, None)),
    type_err("none", lambda: TOKENIZER.token_to_id(None)),
)
cases(
    "ma.WordPieceTokenizer.id_to_token",
    err("out_of_range", lambda: TOKENIZER.id_to_token(48), "id"),
    err("negative", lambda: TOKENIZER.id_to_token(-1), "id"),
    type_err("beyond_int64", lambda: TOKENIZER.id_to_token(BEYOND_INT64)),
)


def _raises(exc, fn):
    try:
        fn()
    except exc:
        return True
    return False


# ---- training: Gradients, cross_entropy (ma), optim ----------------------------------------

cases(
    "ma.Gradients",
    ok("zeros", lambda: ma.Gradients(ma.Linear(2, 2)).norm(), lambda r: assert_same(r, 0.0)),
    type_err("not_a_module", lambda: ma.Gradients(np.zeros(3))),
)
cases(
    "ma.Gradients.state_dict",
    ok("names", lambda: sorted(ma.Gradients(ma.Linear(2, 2)).state_dict()),
       lambda r: assert_same(r, ("bias", "weight"))),
)
cases(
    "ma.Gradients.zero",
    ok("zero", lambda: ma.Gradients(ma.Linear(2, 2)).zero(), lambda r: assert_same(r, None)),
)
cases(
    "ma.Gradients.norm",
    ok("norm", lambda: ma.Gradients(ma.Linear(2, 2)).norm(), lambda r: assert_same(r, 0.0)),
)
cases(
    "ma.Gradients.clip_norm",
    err("max_norm_nan", lambda: ma.Gradients(ma.Linear(2, 2)).clip_norm(math.nan), "max_norm"),
    err("max_norm_negative", lambda: ma.Gradients(ma.Linear(2, 2)).clip_norm(-1.0), "max_norm"),
    ok("zero_gradients_unchanged", lambda: ma.Gradients(ma.Linear(2, 2)).clip_norm(1.0),
       lambda r: assert_same(r, 0.0)),
)

MODEL = ma.Linear(3, 2)
for _cls in ("Adam", "AdamW"):
    cases(
        f"ma.optim.{_cls}",
        err("lr_negative", lambda c=_cls: getattr(ma.optim, c)(MODEL, lr=-1.0), "lr"),
        err("lr_nan", lambda c=_cls: getattr(ma.optim, c)(MODEL, lr=math.nan), "lr"),
        err_re("beta_1", lambda c=_cls: getattr(ma.optim, c)(MODEL, betas=(1.0, 0.9)),
               r"(betas|beta1): expected"),
        err("eps_negative", lambda c=_cls: getattr(ma.optim, c)(MODEL, eps=-1e-8), "eps"),
        err("weight_decay_nan",
            lambda c=_cls: getattr(ma.optim, c)(MODEL, weight_decay=math.nan), "weight_decay"),
        err_re("no_weight_decay_unknown_name",
               lambda c=_cls: getattr(ma.optim, c)(MODEL, no_weight_decay=["nope"]),
               r"no_weight_decay.*expected"),
        type_err("not_a_module", lambda c=_cls: getattr(ma.optim, c)(np.zeros(3))),
    )


def _adam_after_step():
    model = ma.Linear(3, 2)
    grads = ma.Gradients(model)
    model.forward_backward(randn(2, 3), randn(2, 2))  # fills nothing: a pure forward_backward
    opt = ma.optim.Adam(model)
    opt.step(grads)
    return opt


cases(
    "ma.optim.Adam.step",
    err_re("gradients_of_another_module",
           lambda: ma.optim.Adam(ma.Linear(3, 2)).step(ma.Gradients(ma.Linear(4, 2))),
           r"grads.*expected"),
    err("lr_nan", lambda: ma.optim.Adam(MODEL).step(ma.Gradients(MODEL), math.nan), "lr"),
    type_err("not_gradients", lambda: ma.optim.Adam(MODEL).step({"weight": np.zeros((2, 3))})),
    ok("one_step", lambda: _adam_after_step().steps, lambda r: assert_same(r, 1)),
)
entry("ma.optim.Adam.load_state_dict", Entry(
    lambda **a: _load_adam_state(a["step"]),
    {"step": Arr(np.array(1, np.int64), kind="any", layouts=False, message='state["step"]')},
    [
        type_err("not_a_dict", lambda: ma.optim.Adam(MODEL).load_state_dict([1]), "state"),
        err_re("missing_key", lambda: ma.optim.Adam(MODEL).load_state_dict({}), r"state.*expected"),
    ],
))


def _load_adam_state(step):
    opt = _adam_after_step()
    state = dict(opt.state_dict())
    state["step"] = step
    opt.load_state_dict(state)
    return opt.steps


cases(
    "ma.optim.Adam.state_dict",
    ok("keys_after_a_step", lambda: "step" in _adam_after_step().state_dict(),
       lambda r: assert_same(r, True)),
)
for _fn in ("inverse_sqrt", "warmup_constant"):
    cases(
        f"ma.optim.{_fn}",
        ok("warmup_half", lambda f=_fn: getattr(ma.optim, f)(5, 0.1, 10),
           lambda r: assert_same(r, 0.05)),
        err("step_negative", lambda f=_fn: getattr(ma.optim, f)(-1, 0.1, 10), "step"),
        err("peak_nan", lambda f=_fn: getattr(ma.optim, f)(1, math.nan, 10), "peak"),
        err("warmup_negative", lambda f=_fn: getattr(ma.optim, f)(1, 0.1, -1), "warmup"),
    )
cases(
    "ma.optim.noam",
    err("d_model_0", lambda: ma.optim.noam(1, 0), "d_model"),
    err("warmup_0", lambda: ma.optim.noam(1, 512, 1.0, 0), "warmup"),
    err("factor_nan", lambda: ma.optim.noam(1, 512, math.nan), "factor"),
    err("step_negative", lambda: ma.optim.noam(-1, 512), "step"),
    ok("step_0_is_step_1", lambda: (ma.optim.noam(0, 512), ma.optim.noam(1, 512)),
       lambda r: assert_same(r[0], r[1])),
)
cases(
    "ma.optim.rank1_parameter_names",
    ok("linear", lambda: ma.optim.rank1_parameter_names(ma.Linear(2, 2)),
       lambda r: assert_same(r, ("bias",))),
    type_err("not_a_module", lambda: ma.optim.rank1_parameter_names(None)),
)


def _checkpoint_round_trip(tensors=None, metadata=None, step=3):
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        model = ma.Linear(3, 2)
        opt = ma.optim.Adam(model)
        ma.optim.save_checkpoint(path, model, opt, step, tensors, metadata)
        return ma.optim.load_checkpoint(path, ma.Linear(3, 2), ma.optim.Adam(ma.Linear(3, 2)))
    finally:
        os.remove(path)


entry("ma.optim.save_checkpoint", Entry(
    lambda **a: _checkpoint_round_trip({"rng": a["rng"]})[1]["rng"],
    {"rng": Arr(np.arange(4, dtype=np.int64), kind="any", message='tensors["rng"]')},
    [
        err("step_negative", lambda: _checkpoint_round_trip(step=-1), "step"),
        type_err("tensors_not_a_dict", lambda: _checkpoint_round_trip([np.zeros(2)]), "tensors"),
        type_err("metadata_not_str", lambda: _checkpoint_round_trip(None, {"a": 1}), "metadata"),
        type_err("path_none", lambda: ma.optim.save_checkpoint(None, MODEL, ma.optim.Adam(MODEL))),
    ],
))
cases(
    "ma.optim.load_checkpoint",
    err_re("missing_file",
           lambda: ma.optim.load_checkpoint("/nonexistent.safetensors", MODEL,
                                            ma.optim.Adam(MODEL)),
           r"/nonexistent.safetensors.*expected"),
    err_re("model_of_another_shape", lambda: _load_into(ma.Linear(4, 2)),
           r"checkpoint .*: expected the 2 parameters of this model"),
    ok("round_trip_step", lambda: _checkpoint_round_trip()[0], lambda r: assert_same(r, 3)),
)


def _load_into(model):
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        m = ma.Linear(3, 2)
        ma.optim.save_checkpoint(path, m, ma.optim.Adam(m))
        return ma.optim.load_checkpoint(path, model, ma.optim.Adam(model))
    finally:
        os.remove(path)


# ---- Seq2Seq: model, CopyTask, trainer --------------------------------------------------------

V = 11


_s2s = _fresh(lambda: _eval(ma.Seq2SeqTransformer(
    V, V, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16,
    dropout=0.0, max_len=16)))


S2S = _s2s()
TASK = ma.CopyTask(vocab=V, min_len=2, max_len=5)
BATCH = TASK.batch(seed=1, index=0, n=3)
SRC_T, LEN_T = BATCH["src"], BATCH["src_lengths"]
TGT_IN, TGT_OUT = BATCH["tgt_in"], BATCH["tgt_out"]
cases(
    "ma.Seq2SeqTransformer",
    err_re("vocab_0", lambda: ma.Seq2SeqTransformer(0, V), r"(src_vocab|Seq2Seq.*): expected"),
    err_re("heads_not_dividing", lambda: ma.Seq2SeqTransformer(V, V, d_model=8, nhead=3),
           r"(nhead|num_heads|d_model|Seq2Seq.*|MultiheadAttention): expected"),
)
entry("ma.Seq2SeqTransformer.__call__", Entry(
    lambda **a: S2S(**a),
    {"src": Arr(SRC_T, kind="int", ranks=(1, 3)),
     "src_lengths": Arr(LEN_T, kind="int", ranks=(0, 2)),
     "tgt": Arr(TGT_IN, kind="int", ranks=(1, 3))},
    [
        err("src_id_out_of_range", lambda: S2S(SRC_T + V, LEN_T, TGT_IN), "src", r" an id in"),
        err("tgt_id_negative", lambda: S2S(SRC_T, LEN_T, TGT_IN - V), "tgt", r" an id in"),
        err("src_length_beyond", lambda: S2S(SRC_T, LEN_T + 99, TGT_IN), "src_lengths"),
        err("src_lengths_batch_mismatch", lambda: S2S(SRC_T, LEN_T[:1], TGT_IN), "src_lengths"),
        err_re("beyond_max_len", lambda: S2S(ids(1, 17, high=V), [17], TGT_IN[:1]),
               r"src: expected \(N, S\) with S <= max_len = 16, got \(1, 17\)"),
        err_re("tgt_beyond_max_len", lambda: S2S(SRC_T[:1], LEN_T[:1], ids(1, 17, high=V)),
               r"tgt: expected \(N, T\) with T <= max_len = 16, got \(1, 17\)"),
    ],
))
entry("ma.Seq2SeqTransformer.forward_backward", Entry(
    lambda **a: _s2s().forward_backward(**a),
    {"src": Arr(SRC_T, kind="int", ranks=(1,)), "src_lengths": Arr(LEN_T, kind="int", ranks=(2,)),
     "tgt": Arr(TGT_IN, kind="int", ranks=(1,)),
     "grad_logits": Arr(randn(*TGT_IN.shape, V), ranks=(2,))},
    [err("grad_logits_shape_mismatch",
         lambda: S2S.forward_backward(SRC_T, LEN_T, TGT_IN, randn(*TGT_IN.shape, V - 1)),
         "grad_logits")],
))
entry("ma.Seq2SeqTransformer.greedy_decode", Entry(
    lambda **a: S2S.greedy_decode(**a, start_symbol=1, max_len=4),
    {"src": Arr(SRC_T, kind="int", ranks=(1,)), "src_lengths": Arr(LEN_T, kind="int", ranks=(2,))},
    [
        err("start_symbol_out_of_range",
            lambda: S2S.greedy_decode(SRC_T, LEN_T, start_symbol=V, max_len=4), "start_symbol"),
        err("stop_symbol_negative",
            lambda: S2S.greedy_decode(SRC_T, LEN_T, 1, 4, stop_symbol=-1), "stop_symbol"),
        err("max_len_0", lambda: S2S.greedy_decode(SRC_T, LEN_T, 1, 0), "max_len"),
        err("max_len_beyond", lambda: S2S.greedy_decode(SRC_T, LEN_T, 1, 17), "max_len"),
    ],
))
cases(
    "ma.CopyTask",
    err_re("vocab_3", lambda: ma.CopyTask(vocab=3), r"(vocab|CopyTask): expected"),
    err_re("min_len_above_max", lambda: ma.CopyTask(min_len=6, max_len=3),
           r"(min_len|max_len|CopyTask): expected"),
)
cases(
    "ma.CopyTask.batch",
    err("n_0", lambda: TASK.batch(1, 0, 0), "n"),
    err("index_negative", lambda: TASK.batch(1, -1, 2), "index"),
    err("n_overflow", lambda: TASK.batch(1, 0, 2**62), "n", " a size product"),
    type_err("seed_negative", lambda: TASK.batch(-1, 0, 2)),
)
entry("ma.CopyTask.count_exact", Entry(
    lambda **a: TASK.count_exact(**a),
    {"src": Arr(SRC_T, kind="int", ranks=(1,)), "src_lengths": Arr(LEN_T, kind="int", ranks=(2,)),
     "decoded": Arr(np.concatenate([np.ones((3, 1), np.int64), SRC_T], 1), kind="int",
                    ranks=(1,))},
    [
        err("src_lengths_batch_mismatch",
            lambda: TASK.count_exact(SRC_T, LEN_T[:1], SRC_T), "src_lengths"),
        err("decoded_batch_mismatch", lambda: TASK.count_exact(SRC_T, LEN_T, SRC_T[:1]), "decoded"),
    ],
))


def _trainer():
    return ma.Seq2SeqTrainer(_s2s(), warmup=4)


cases(
    "ma.Seq2SeqTrainer",
    err("warmup_0", lambda: ma.Seq2SeqTrainer(_s2s(), warmup=0), "warmup"),
    err("factor_nan", lambda: ma.Seq2SeqTrainer(_s2s(), factor=math.nan), "factor"),
    err("clip_norm_negative", lambda: ma.Seq2SeqTrainer(_s2s(), clip_norm=-1.0), "clip_norm"),
    err("label_smoothing_2", lambda: ma.Seq2SeqTrainer(_s2s(), label_smoothing=2.0),
        "label_smoothing"),
    err("label_smoothing_nan", lambda: ma.Seq2SeqTrainer(_s2s(), label_smoothing=math.nan),
        "label_smoothing"),
    err("cooldown_beyond_total",
        lambda: ma.Seq2SeqTrainer(_s2s(), total_steps=5, cooldown_steps=9), "cooldown_steps"),
    type_err("not_a_seq2seq_model", lambda: ma.Seq2SeqTrainer(ma.Linear(2, 2))),
)
entry("ma.Seq2SeqTrainer.step", Entry(
    lambda **a: _trainer().step(**a),
    {"src": Arr(SRC_T, kind="int", ranks=(1,)), "src_lengths": Arr(LEN_T, kind="int", ranks=(2,)),
     "tgt_in": Arr(TGT_IN, kind="int", ranks=(1,)),
     "tgt_out": Arr(TGT_OUT, kind="int", ranks=(1,))},
    [
        err("tgt_out_shape_mismatch",
            lambda: _trainer().step(SRC_T, LEN_T, TGT_IN, TGT_OUT[:, :-1]), "tgt_out"),
        err("tgt_out_out_of_range",
            lambda: _trainer().step(SRC_T, LEN_T, TGT_IN, TGT_OUT * 0 + V), "tgt_out"),
    ],
))


def _trainer_round_trip():
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        t = _trainer()
        t.step(SRC_T, LEN_T, TGT_IN, TGT_OUT)
        t.save(path)
        return _trainer().load(path)
    finally:
        os.remove(path)


cases(
    "ma.Seq2SeqTrainer.save",
    err_re("unwritable", lambda: _trainer().save("/nonexistent/dir/x.safetensors"),
           r"/nonexistent/dir.*expected"),
    type_err("path_none", lambda: _trainer().save(None)),
)
cases(
    "ma.Seq2SeqTrainer.load",
    ok("round_trip", _trainer_round_trip, lambda r: assert_same(r, 1)),
    err_re("missing_file", lambda: _trainer().load("/nonexistent.safetensors"),
           r"/nonexistent.safetensors.*expected"),
    err_re("a_checkpoint_of_another_model", lambda: _trainer().load(_other_checkpoint()),
           r"expected"),
)


def _other_checkpoint():
    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    m = ma.Linear(3, 2)
    ma.optim.save_checkpoint(path, m, ma.optim.Adam(m))
    return path


# ---- viz ---------------------------------------------------------------------------------------

WEIGHTS = np.full((1, 2, 3, 3), 1 / 3, np.float32)


def _is_picture(r):
    """PNG bytes or an HTML page (what the pictures return)."""
    assert (isinstance(r, bytes) and r[:8] == b"\x89PNG\r\n\x1a\n") or (
        isinstance(r, str) and r.lstrip().lower().startswith("<!doctype html")), r[:20]
PE_VALUES = ma.sinusoidal_encoding(6, 4)
HEAT = randn(3, 4)

for _kind in ("png", "html"):
    _attention = getattr(ma.viz, f"attention_{_kind}")
    entry(f"ma.viz.attention_{_kind}", Entry(
        lambda fn=_attention, **a: fn(a["weights"]),
        {"weights": Arr(WEIGHTS, kind="numeric", ranks=(1, 6), layouts=False)},
        [
            ok("nan_is_drawn", lambda fn=_attention: fn(np.full((1, 1, 2, 2), np.nan, np.float32)),
               _is_picture),
            ok("negative_is_drawn", lambda fn=_attention: fn(-WEIGHTS), _is_picture),
            err("empty", lambda fn=_attention: fn(WEIGHTS[:, :, :0]), "weights"),
            err_re("mask_does_not_fit", lambda fn=_attention: fn(WEIGHTS, ma.key_lengths([1, 2])),
                   r"mask.*expected"),
            err("query_labels_count", lambda fn=_attention: fn(WEIGHTS, query_labels=["a"]),
                "query_labels"),
            err("heads_out_of_range", lambda fn=_attention: fn(WEIGHTS, heads=[5]), "heads"),
            err("vmax_nan", lambda fn=_attention: fn(WEIGHTS, vmax=math.nan), "vmax"),
        ],
    ))
    _encoding = getattr(ma.viz, f"encoding_{_kind}")
    entry(f"ma.viz.encoding_{_kind}", Entry(
        lambda fn=_encoding, **a: fn(a["pe"]),
        {"pe": Arr(PE_VALUES, kind="numeric", ranks=(1, 3), layouts=False)},
        [
            ok("nan_is_drawn", lambda fn=_encoding: fn(np.full((3, 4), np.nan, np.float32)),
               _is_picture),
            err("dims_out_of_range", lambda fn=_encoding: fn(PE_VALUES, dims=[9]), "dims"),
            err("empty", lambda fn=_encoding: fn(PE_VALUES[:0]), "pe"),
        ],
    ))
    _heatmap = getattr(ma.viz, f"heatmap_{_kind}")
    entry(f"ma.viz.heatmap_{_kind}", Entry(
        lambda fn=_heatmap, **a: fn(a["values"]),
        {"values": Arr(HEAT, kind="numeric", ranks=(1, 3), layouts=False)},
        [
            ok("nan_is_drawn", lambda fn=_heatmap: fn(np.full((2, 2), np.nan, np.float32)),
               _is_picture),
            err("colormap_unknown", lambda fn=_heatmap: fn(HEAT, colormap="jet"), "colormap"),
            err("vmin_above_vmax", lambda fn=_heatmap: fn(HEAT, vmin=1.0, vmax=0.0), "vmin"),
            err("masked_shape", lambda fn=_heatmap: fn(HEAT, masked=np.zeros((2, 2), bool)),
                "masked"),
            err("masked_dtype", lambda fn=_heatmap: fn(HEAT, masked=np.zeros((3, 4), np.float32)),
                "masked"),
            err("row_labels_count", lambda fn=_heatmap: fn(HEAT, row_labels=["a"]), "row_labels"),
        ],
    ))
    _mask = getattr(ma.viz, f"mask_{_kind}")
    cases(
        f"ma.viz.mask_{_kind}",
        ok("causal", lambda fn=_mask: len(fn(ma.causal(), 1, 1, 3, 3)) > 0,
           lambda r: assert_same(r, True)),
        err("mask_raw_array", lambda fn=_mask: fn(np.ones((3, 3), bool), 1, 1, 3, 3), "mask"),
        err_re("mask_does_not_fit", lambda fn=_mask: fn(ma.key_lengths([1, 2]), 3, 1, 3, 3),
               r"mask.*expected"),
        err_re("zero_size", lambda fn=_mask: fn(ma.causal(), 1, 1, 0, 3),
               r"(q_len|mask shape|shape|batch): expected"),
        err_re("overflow", lambda fn=_mask: fn(ma.causal(), HUGE, HUGE, HUGE, HUGE),
               r"(batch|heads|q_len|k_len|mask shape|panels|shape): expected"),
        err("diagonal_unknown", lambda fn=_mask: fn(ma.causal(), 1, 1, 3, 3, diagonal="x"),
            "diagonal"),
        err("key_labels_count", lambda fn=_mask: fn(ma.causal(), 1, 1, 3, 3, key_labels=["a"]),
            "key_labels"),
    )
cases(
    "ma.viz.show",
    err("png_not_bytes", lambda: ma.viz.show("not bytes"), "png"),
    err("png_none", lambda: ma.viz.show(None), "png"),
)
