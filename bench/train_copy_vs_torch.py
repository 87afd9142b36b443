#!/usr/bin/env python3
"""Training throughput: the `maskattn demo` copy-task model, one training step
after another, in maskattn and in PyTorch 2.x; same machine, same script, same
batches, same starting weights, 2 threads each.

    PYTHONPATH=build/dev/python .venv/bin/python bench/train_copy_vs_torch.py

The model (the demo's defaults): an encoder-decoder Transformer, d_model 64,
4 heads, 2 + 2 layers, feed-forward 256, pre-norm, dropout 0, embeddings scaled
by sqrt(d_model) plus sinusoidal positions, a Linear generator; source padding
masked (key padding in the encoder and the cross-attention), the target under
the look-ahead mask.

  maskattn  ma.Seq2SeqTrainer.step: forward, cross-entropy (ignore_index -100),
            backward, gradient clipping to norm 1, AdamW at the Noam rate
  torch     the same model built from torch.nn (nn.Embedding, nn.Transformer
            with batch_first and norm_first, nn.Linear), its attention through
            F.scaled_dot_product_attention (nn.MultiheadAttention's path with
            need_weights=False), loaded with maskattn's initial weights;
            F.cross_entropy, loss.backward(), clip_grad_norm_, torch.optim.AdamW
            with LambdaLR(Noam)

Both train on the same ma.CopyTask batches. Before timing, the first step's
losses are compared (same weights, same batch: they must agree to 1e-4).
A timing is the median over --repeats windows of --steps steps each, after
--warmup steps; tokens/s counts the source and target positions of a batch.

Options: --batch (64; the demo trains with 128), --steps (50), --repeats (5),
--warmup (10), --max-len (12), --threads (2: OMP_NUM_THREADS and
torch.set_num_threads).
"""

from __future__ import annotations

import os

import sys

# --threads N (default 2) is read here: OpenMP reads OMP_NUM_THREADS when it
# starts, before the imports below.
THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
os.environ["OMP_NUM_THREADS"] = str(THREADS)

import argparse
import math
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import maskattn as ma

D_MODEL, HEADS, LAYERS, FF, WARMUP = 64, 4, 2, 256, 400


class TorchSeq2Seq(nn.Module):
    """maskattn's Seq2SeqTransformer in torch.nn, with its state_dict names."""

    def __init__(self, vocab: int, max_len: int):
        super().__init__()
        self.src_embed = nn.Embedding(vocab, D_MODEL)
        self.tgt_embed = nn.Embedding(vocab, D_MODEL)
        self.transformer = nn.Transformer(D_MODEL, HEADS, LAYERS, LAYERS, FF, dropout=0.0,
                                          batch_first=True, norm_first=True)
        self.generator = nn.Linear(D_MODEL, vocab)
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]
        div = torch.exp(torch.arange(0, D_MODEL, 2, dtype=torch.float64)
                        * (-math.log(10000.0) / D_MODEL))
        pe = torch.zeros(max_len, D_MODEL, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe.float(), persistent=False)

    def embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return table(ids) * math.sqrt(D_MODEL) + self.pe[: ids.shape[1]]

    def forward(self, src, src_pad, tgt):
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        out = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt),
                               tgt_mask=causal, tgt_is_causal=True,
                               src_key_padding_mask=src_pad, memory_key_padding_mask=src_pad)
        return self.generator(out)


def noam(step: int) -> float:
    s = max(step, 1)
    return D_MODEL ** -0.5 * min(s ** -0.5, s * WARMUP ** -1.5)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--max-len", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(THREADS)
    vocab = 13
    task = ma.CopyTask(vocab=vocab, min_len=4, max_len=a.max_len)
    model = ma.Seq2SeqTransformer(src_vocab=vocab, tgt_vocab=vocab, d_model=D_MODEL, nhead=HEADS,
                                  num_encoder_layers=LAYERS, num_decoder_layers=LAYERS,
                                  dim_feedforward=FF, dropout=0.0, norm_first=True,
                                  max_len=a.max_len + 2)
    model.seed(1)
    tm = TorchSeq2Seq(vocab, a.max_len + 2)
    missing, unexpected = tm.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}, strict=False)
    if unexpected or any(not k.startswith("positional") for k in missing):
        sys.exit(f"state_dict names differ: missing {missing}, unexpected {unexpected}")
    trainer = ma.Seq2SeqTrainer(model, warmup=WARMUP, factor=1.0, clip_norm=1.0)
    opt = torch.optim.AdamW(tm.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, noam)

    def torch_step(b) -> float:
        src = torch.from_numpy(b["src"])
        pad = torch.arange(src.shape[1])[None] >= torch.from_numpy(b["src_lengths"])[:, None]
        logits = tm(src, pad, torch.from_numpy(b["tgt_in"]))
        loss = F.cross_entropy(logits.reshape(-1, vocab), torch.from_numpy(b["tgt_out"]).reshape(-1),
                               ignore_index=-100)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
        opt.step()
        sched.step()
        return loss.item()

    def ma_step(b) -> float:
        return trainer.step(b["src"], b["src_lengths"], b["tgt_in"], b["tgt_out"])["loss"]

    first = task.batch(seed=1, index=0, n=a.batch)
    l_ma, l_torch = ma_step(first), torch_step(first)
    print(f"first step's loss: maskattn {l_ma:.6f}, torch {l_torch:.6f}")
    if abs(l_ma - l_torch) > 1e-4:
        sys.exit("the two models disagree on the first step: not the same model")
    batches = [task.batch(seed=1, index=i + 1, n=a.batch) for i in range(a.steps)]
    tokens = sum(b["src"].size + b["tgt_in"].size for b in batches)
    for step in (ma_step, torch_step):
        for b in batches[: a.warmup]:
            step(b)
    times = {"maskattn": [], "torch": []}
    for _ in range(a.repeats):  # interleaved: both see the same machine state
        for name, step in (("maskattn", ma_step), ("torch", torch_step)):
            t0 = time.perf_counter()
            for b in batches:
                step(b)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{THREADS} threads, batch {a.batch}, {a.steps} steps per window, {a.repeats} windows, "
          f"{tokens / a.steps:.0f} tokens per step")
    for name in ("maskattn", "torch"):
        print(f"  {name:<9} {med[name] / a.steps * 1e3:7.2f} ms/step  "
              f"{tokens / med[name]:9.0f} tokens/s  (windows: "
              + ", ".join(f"{t:.2f}" for t in times[name]) + " s)")
    print(f"  maskattn / torch throughput: {med['torch'] / med['maskattn']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
