"""``ma.from_hf_attention_mask`` against the masks ``transformers`` builds for BERT.

A tiny ``BertModel`` (random weights, eval mode, eager attention) is run on a
2-D ``attention_mask`` (B, S), 1 = token, 0 = padding. What its self-attention
receives is captured through transformers 5.x's pluggable attention: a
function registered with ``transformers.AttentionInterface`` under its own
name records ``query, key, value, attention_mask, scaling`` and delegates to
BERT's own ``eager_attention_forward``. The same name is registered in
``AttentionMaskInterface`` with transformers' ``eager_mask``, so
``create_bidirectional_mask`` builds exactly the 4-D additive float mask that
``attn_implementation="eager"`` gets (0 = attend, ``finfo(float32).min`` =
padding, shape (B, 1, L, S); ``None`` when nothing is padded). A test checks
that the capturing model gives bit-identical hidden states to plain eager.

Layouts: the captured q / k / v are (B, H, L, D), what ``ma.attention`` takes;
``eager_attention_forward`` returns its output as (B, L, H, D) and its weights
as (B, H, L, S).

Checked:
  (a) ``from_hf_attention_mask(captured 4-D mask)`` allows exactly the pairs
      ``from_hf_attention_mask(2-D mask)`` allows, -inf exactly where the
      transformers mask is at or below float32's minimum;
  (b) ``ma.attention(q, k, v, from_hf_attention_mask(2-D), scale=scaling)`` on
      the captured q / k / v equals the eager output of that layer;
  (c) maskattn as the whole model's attention backend gives BERT's hidden
      states, and padding does not change the real tokens' states;
plus the 2-D mask in several dtypes, and values other than 0/1 rejected.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import OUT_ATOL, WEIGHTS_ATOL
from transformers import AttentionInterface, BertConfig, BertModel
from transformers.masking_utils import (
    ALL_MASK_ATTENTION_FUNCTIONS,
    AttentionMaskInterface,
    create_bidirectional_mask,
)
from transformers.models.bert import modeling_bert

import maskattn as ma

CAPTURE = "maskattn_test_capture"  # eager attention, recorded
BACKEND = "maskattn_test_backend"  # ma.attention on transformers' 4-D mask

HIDDEN, LAYERS, HEADS, VOCAB = 32, 2, 4, 100
F32_MIN = float(np.finfo(np.float32).min)

# 2-D attention masks (B=3, S=6): 1 = token, 0 = padding.
MASKS = {
    "right_padding": [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]],
    "left_padding": [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]],
    "holes": [[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 0]],
    "no_padding": [[1] * 6] * 3,
    # Batch 1 is all padding: a sequence without a single token.
    "all_padding_row": [[1, 1, 1, 0, 0, 0], [0] * 6, [1, 1, 1, 1, 1, 1]],
}
DTYPES = {"bool": torch.bool, "int64": torch.int64, "float32": torch.float32}


# ---------------------------------------------------------------------------
# The capturing attention function and the model
# ---------------------------------------------------------------------------

RECORDS: list[dict] = []


def capture_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    out, weights = modeling_bert.eager_attention_forward(
        module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
    )
    RECORDS.append(
        {
            "q": query,  # (B, H, L, D)
            "k": key,
            "v": value,
            "mask": attention_mask,  # (B, 1, L, S) float, or None
            "scaling": scaling,
            "out": out,  # (B, L, H, D)
            "weights": weights,  # (B, H, L, S)
        }
    )
    return out, weights


def maskattn_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """maskattn as a transformers attention backend, reading transformers' own
    4-D mask; returns BERT's layout (B, L, H, D)."""
    assert dropout == 0.0
    out = ma.attention(
        query.contiguous(),
        key.contiguous(),
        value.contiguous(),
        ma.from_hf_attention_mask(attention_mask),
        scale=scaling,
    )
    return torch.from_numpy(out).transpose(1, 2).contiguous(), None


@pytest.fixture(scope="module", autouse=True)
def registered_attention():
    """Register both functions (and eager's mask builder for their names);
    remove them afterwards."""
    eager_mask = ALL_MASK_ATTENTION_FUNCTIONS["eager"]
    for name, fn in ((CAPTURE, capture_attention), (BACKEND, maskattn_attention)):
        AttentionInterface.register(name, fn)
        AttentionMaskInterface.register(name, eager_mask)
    yield
    for name in (CAPTURE, BACKEND):
        del AttentionInterface._global_mapping[name]
        del AttentionMaskInterface._global_mapping[name]


@pytest.fixture(scope="module")
def bert(registered_attention) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=64,
        max_position_embeddings=32,
        attn_implementation="eager",
    )
    model = BertModel(config).eval()
    assert model.config._attn_implementation == "eager"
    return model


def with_attention(model: BertModel, name: str) -> BertModel:
    m = copy.deepcopy(model)
    m.set_attn_implementation(name)
    assert m.config._attn_implementation == name
    return m


def input_ids(batch: int, length: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randint(1, VOCAB, (batch, length), generator=g)


def run_captured(bert, mask_2d: torch.Tensor):
    """(last_hidden_state, the records of the two layers)."""
    model = with_attention(bert, CAPTURE)
    RECORDS.clear()
    with torch.no_grad():
        hidden = model(input_ids=input_ids(*mask_2d.shape), attention_mask=mask_2d).last_hidden_state
    records = list(RECORDS)
    assert len(records) == LAYERS
    return hidden, records


def mask_2d(case: str, dtype: str = "int64") -> torch.Tensor:
    return torch.tensor(MASKS[case]).to(DTYPES[dtype])


# ---------------------------------------------------------------------------
# The capture itself is faithful
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["right_padding", "holes"])
def test_capturing_attention_is_bert_eager_attention(bert, case):
    m = mask_2d(case)
    captured, records = run_captured(bert, m)
    with torch.no_grad():
        eager = bert(input_ids=input_ids(*m.shape), attention_mask=m).last_hidden_state
    torch.testing.assert_close(captured, eager, rtol=0, atol=0)
    for r in records:
        b, s = m.shape
        assert r["q"].shape == r["k"].shape == r["v"].shape == (b, HEADS, s, HIDDEN // HEADS)
        assert r["out"].shape == (b, s, HEADS, HIDDEN // HEADS)
        assert r["scaling"] == pytest.approx((HIDDEN // HEADS) ** -0.5)


# ---------------------------------------------------------------------------
# (a) the 4-D mask transformers builds reads like the 2-D mask it came from
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("case", [c for c in MASKS if c != "no_padding"])
def test_transformers_4d_mask_allows_the_same_pairs_as_2d_mask(bert, case, dtype):
    m = mask_2d(case, dtype)
    b, s = m.shape
    _, records = run_captured(bert, m)
    tmask = records[0]["mask"]
    assert tmask.shape == (b, 1, s, s) and tmask.dtype == torch.float32
    tmask_np = tmask.numpy()

    # The oracle mask itself follows the rule: key j of batch b is padding
    # iff attention_mask[b, j] == 0, for every query.
    padding = np.broadcast_to((np.array(MASKS[case]) == 0)[:, None, None, :], tmask_np.shape)
    np.testing.assert_array_equal(tmask_np <= F32_MIN, padding)
    assert (tmask_np[~padding] == 0).all()

    from_4d = ma.from_hf_attention_mask(tmask).materialize(b, HEADS, s, s)
    from_2d = ma.from_hf_attention_mask(m).materialize(b, HEADS, s, s)
    blocked = np.broadcast_to(tmask_np <= F32_MIN, (b, HEADS, s, s))
    np.testing.assert_array_equal(np.isneginf(from_4d), blocked)
    np.testing.assert_array_equal(np.isneginf(from_2d), np.isneginf(from_4d))
    # No bias: allowed pairs are exactly 0 in both readings.
    assert (from_4d[~blocked] == 0).all() and (from_2d[~blocked] == 0).all()


def test_no_padding_means_no_mask_in_transformers_and_all_pairs_in_maskattn(bert):
    m = mask_2d("no_padding")
    b, s = m.shape
    _, records = run_captured(bert, m)
    assert all(r["mask"] is None for r in records)  # transformers skips the mask
    assert ma.from_hf_attention_mask(None).allows_all
    np.testing.assert_array_equal(ma.from_hf_attention_mask(m).materialize(b, HEADS, s, s), 0)


def test_sdpa_bool_4d_mask_reads_like_2d_mask(bert):
    """The SDPA implementation's mask is bool (B, 1, L, S), True = attend."""
    m = mask_2d("holes")
    b, s = m.shape
    config = copy.deepcopy(bert.config)
    config._attn_implementation = "sdpa"
    embeds = torch.zeros(b, s, HIDDEN)
    smask = create_bidirectional_mask(config=config, inputs_embeds=embeds, attention_mask=m)
    assert smask.dtype == torch.bool and smask.shape == (b, 1, s, s)
    rule = np.broadcast_to((np.array(MASKS["holes"]) == 1)[:, None, None, :], (b, HEADS, s, s))
    np.testing.assert_array_equal(np.broadcast_to(smask.numpy(), rule.shape), rule)
    got = ma.from_hf_attention_mask(smask).materialize(b, HEADS, s, s)
    np.testing.assert_array_equal(got, np.where(rule, 0.0, -np.inf))


# ---------------------------------------------------------------------------
# (b) ma.attention on the captured q / k / v equals BERT's eager attention
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("case", list(MASKS))
def test_attention_on_captured_qkv_matches_eager_output(bert, case, dtype):
    m = mask_2d(case, dtype)
    tokens = np.array(MASKS[case]) == 1  # (B, L): real tokens
    has_tokens = tokens.any(axis=1)  # sequences with at least one token
    _, records = run_captured(bert, m)
    for r in records:
        out, weights = ma.attention(
            r["q"], r["k"], r["v"], ma.from_hf_attention_mask(m), scale=r["scaling"], need_weights=True
        )
        got = out.transpose(0, 2, 1, 3)  # (B, H, L, D) -> eager's (B, L, H, D)
        want = r["out"].numpy()
        want_w = r["weights"].numpy()

        # Real tokens' rows: the comparison the mask exists for.
        np.testing.assert_allclose(got[tokens], want[tokens], rtol=0, atol=OUT_ATOL)
        # Padding queries of a sequence that has tokens attend to its tokens in
        # both (the 2-D mask pads keys only).
        rows = has_tokens[:, None] & ~tokens
        np.testing.assert_allclose(got[rows], want[rows], rtol=0, atol=OUT_ATOL)
        np.testing.assert_allclose(
            weights[has_tokens], want_w[has_tokens], rtol=0, atol=WEIGHTS_ATOL
        )

        # A sequence with no token: finfo.min + score rounds to the same value
        # for every key, so eager gives uniform weights 1/S; maskattn reads
        # finfo.min as masked and gives the empty-row result, zeros.
        if not has_tokens.all():
            s = m.shape[1]
            np.testing.assert_allclose(want_w[~has_tokens], 1.0 / s, rtol=0, atol=WEIGHTS_ATOL)
            assert (weights[~has_tokens] == 0).all()
            assert (got[~has_tokens] == 0).all()


# ---------------------------------------------------------------------------
# (c) whole model
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["right_padding", "left_padding", "holes", "no_padding"])
def test_maskattn_backend_gives_bert_hidden_states(bert, case):
    """maskattn as BERT's attention (reading transformers' 4-D mask) changes
    no real token's last hidden state."""
    m = mask_2d(case)
    tokens = np.array(MASKS[case]) == 1
    backend = with_attention(bert, BACKEND)
    with torch.no_grad():
        want = bert(input_ids=input_ids(*m.shape), attention_mask=m).last_hidden_state.numpy()
        got = backend(input_ids=input_ids(*m.shape), attention_mask=m).last_hidden_state.numpy()
    np.testing.assert_allclose(got[tokens], want[tokens], rtol=0, atol=OUT_ATOL)


def test_padding_does_not_change_real_token_states(bert):
    """Sanity check of the captured path: a sequence alone (no mask) and the
    same sequence right-padded (4-D mask) give the same real-token states."""
    ids = input_ids(1, 4)
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=ids.dtype)], dim=1)
    m = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
    model = with_attention(bert, CAPTURE)
    with torch.no_grad():
        RECORDS.clear()
        alone = model(input_ids=ids, attention_mask=torch.ones(1, 4, dtype=torch.int64)).last_hidden_state
        assert RECORDS[0]["mask"] is None
        RECORDS.clear()
        with_pad = model(input_ids=padded, attention_mask=m).last_hidden_state
        assert RECORDS[0]["mask"] is not None
    torch.testing.assert_close(with_pad[:, :4], alone, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------
# The 2-D mask: dtypes and values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", [np.bool_, np.uint8, np.int32, np.int64, np.float32, np.float64]
)
def test_2d_mask_dtypes_read_the_same(dtype):
    m = np.array(MASKS["holes"])
    b, s = m.shape
    want = np.broadcast_to(np.where(m == 1, 0.0, -np.inf)[:, None, None, :], (b, 2, 3, s))
    got_np = ma.from_hf_attention_mask(m.astype(dtype)).materialize(b, 2, 3, s)
    got_torch = ma.from_hf_attention_mask(torch.from_numpy(m.astype(dtype))).materialize(b, 2, 3, s)
    np.testing.assert_array_equal(got_np, want)
    np.testing.assert_array_equal(got_torch, want)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(np.array([[1, 2, 0]]), id="int_2"),
        pytest.param(np.array([[1, -1, 0]]), id="int_minus_1"),
        pytest.param(np.array([[1.0, 0.5, 0.0]], dtype=np.float32), id="float_0.5"),
        pytest.param(np.array([[1.0, 2.0, 0.0]]), id="float_2"),
        pytest.param(np.array([[1.0, F32_MIN, 0.0]], dtype=np.float32), id="float_additive_in_2d"),
        pytest.param(np.array([[1.0, np.nan, 0.0]], dtype=np.float32), id="float_nan"),
    ],
)
def test_2d_mask_values_other_than_0_and_1_are_rejected(bad):
    with pytest.raises(ValueError):
        ma.from_hf_attention_mask(bad)
    with pytest.raises(ValueError):
        ma.from_hf_attention_mask(torch.from_numpy(bad))
