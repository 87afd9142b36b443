#!/usr/bin/env python3
"""Masked attention forward: maskattn's flash backend against PyTorch 2.x, same
machine, same script, same input tensors, 2 threads each.

    PYTHONPATH=build/dev/python .venv/bin/python bench/compare_torch.py

Three ways to compute each configuration:

  torch SDPA   F.scaled_dot_product_attention: is_causal=True where the mask is
               causal and nothing else (torch's CPU flash kernel), otherwise the
               equivalent bool attn_mask (True = may attend); GQA through
               enable_gqa=True (torch >= 2.5; repeat_interleave of k, v before)
  torch eager  the textbook formula: (q @ k^T) * scale, masked_fill(-inf),
               softmax, @ v (GQA: k, v repeat_interleave'd to the query heads)
  maskattn     ma.attention(q, k, v, mask, backend="flash") on the same tensors
               (read in place, no copy), mask from the library's own parts

Configurations (fp32 unless noted; B batch, H query heads, L length, D head dim):

  a         B=8 H=12 L=512  D=64   causal
  b_causal  B=1 H=16 L=2048 D=64   causal
  b_none    B=1 H=16 L=2048 D=64   no mask
  d         B=1 H=16 L=2048 D=64   key_lengths: the first 1024 keys (torch: bool (B, 1, 1, L))
  c         B=1 H=32 L=4096 D=128  causal (torch eager: each (H, L, L) fp32 scores
                                   tensor is 2 GiB, ~4 GiB at its peak)
  e         B=1 H=16 L=4096 D=64   sliding window: itself and the 256 keys before
                                   (ma.sliding_window(256, 0); torch: bool band)
  f         B=1 H=16 L=4096 D=64   4 packed documents of 1024, block-diagonal, not causal
                                   (ma.documents(ids); torch: bool block-diagonal)
  g_bf16    decode: B=1 Lq=1 Lk=8192 H=32 Hkv=8 D=128, q/k/v bfloat16
  g_fp32    the same decode in fp32

Before timing a configuration, each path runs once and its output is compared
with torch SDPA's (max |diff| printed); maskattn beyond 1e-4 (fp32) or
4e-3 * max|v| (bf16: with AVX-512 BF16, flash rounds the probabilities to
bfloat16) stops the script. Eager is checked at the same bound in fp32; in
bf16 its scores and softmax are bf16 as well, so its difference is only
printed. That first call is also the warm-up (workspaces, page faults);
each timing is then the median of --repeats calls, after --warmup more.
Inputs: unit-variance, from a seed per configuration (the same whichever
configurations run).

Options: --configs a,b,... (a letter selects all its variants; default all),
--repeats N (default 5), --warmup N (default 0). At the defaults a run took
2 to 3.5 minutes on the 2-core machine while other jobs shared it, most of it
c's eager path. The machine's threads:
OMP_NUM_THREADS=2 is set before maskattn (OpenMP) and torch are imported (an
OMP_NUM_THREADS already set is kept), and torch.set_num_threads(2).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # read when OpenMP starts: before the imports

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

import maskattn as ma

FP32_ATOL = 1e-4
BF16_ATOL_PER_MAX_V = 4e-3


@dataclass(frozen=True)
class Config:
    name: str
    what: str
    b: int
    hq: int
    hkv: int
    lq: int
    lk: int
    d: int
    mask: str  # "none", "causal", "key_padding", "sliding_window", "documents"
    dtype: torch.dtype = torch.float32
    note: str = ""


CONFIGS = [
    Config("a", "B=8 H=12 L=512 D=64 causal", 8, 12, 12, 512, 512, 64, "causal"),
    Config("b_causal", "B=1 H=16 L=2048 D=64 causal", 1, 16, 16, 2048, 2048, 64, "causal"),
    Config("b_none", "B=1 H=16 L=2048 D=64 no mask", 1, 16, 16, 2048, 2048, 64, "none"),
    Config("c", "B=1 H=32 L=4096 D=128 causal", 1, 32, 32, 4096, 4096, 128, "causal",
           note="eager: 2 GiB per fp32 scores tensor"),
    Config("d", "B=1 H=16 L=2048 D=64 key_lengths 1024", 1, 16, 16, 2048, 2048, 64,
           "key_padding"),
    Config("e", "B=1 H=16 L=4096 D=64 window 256", 1, 16, 16, 4096, 4096, 64, "sliding_window"),
    Config("f", "B=1 H=16 L=4096 D=64 4 docs x 1024", 1, 16, 16, 4096, 4096, 64, "documents"),
    Config("g_bf16", "decode Lk=8192 H=32/8 D=128 bf16", 1, 32, 8, 1, 8192, 128, "none",
           torch.bfloat16),
    Config("g_fp32", "decode Lk=8192 H=32/8 D=128 fp32", 1, 32, 8, 1, 8192, 128, "none"),
]

WINDOW = 256  # e: keys i - 256 .. i
DOCUMENT = 1024  # f: document length


def maskattn_mask(c: Config) -> ma.Mask | None:
    if c.mask == "none":
        return None
    if c.mask == "causal":
        return ma.causal()
    if c.mask == "key_padding":
        return ma.key_lengths([c.lk // 2] * c.b)
    if c.mask == "sliding_window":
        return ma.sliding_window(WINDOW, 0)
    if c.mask == "documents":
        return ma.documents(np.arange(c.lk) // DOCUMENT)
    raise ValueError(c.mask)


def torch_keep(c: Config) -> torch.Tensor | None:
    """The same rule as a bool tensor, True = may attend, broadcast against (B, H, Lq, Lk)."""
    i = torch.arange(c.lq)[:, None] + (c.lk - c.lq)
    j = torch.arange(c.lk)[None, :]
    if c.mask == "none":
        return None
    if c.mask == "causal":
        return j <= i
    if c.mask == "key_padding":
        return (torch.arange(c.lk) < c.lk // 2).expand(c.b, 1, 1, c.lk)
    if c.mask == "sliding_window":
        return (j <= i) & (j >= i - WINDOW)
    if c.mask == "documents":
        return (i // DOCUMENT) == (j // DOCUMENT)
    raise ValueError(c.mask)


def sdpa_has_enable_gqa() -> bool:
    q = torch.zeros(1, 2, 1, 4)
    kv = torch.zeros(1, 1, 1, 4)
    try:
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        return True
    except TypeError:
        return False


def torch_sdpa(c: Config, keep, enable_gqa: bool) -> Callable:
    kwargs = {"is_causal": True} if c.mask == "causal" else {"attn_mask": keep}
    group = c.hq // c.hkv
    repeat = group > 1 and not enable_gqa
    if group > 1 and enable_gqa:
        kwargs["enable_gqa"] = True

    def run(q, k, v):
        if repeat:
            k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        return F.scaled_dot_product_attention(q, k, v, **kwargs)

    return run


def torch_eager(c: Config, keep) -> Callable:
    scale = 1.0 / math.sqrt(c.d)
    group = c.hq // c.hkv

    def run(q, k, v):
        if group > 1:
            k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        scores = (q @ k.transpose(-2, -1)) * scale
        if keep is not None:
            scores = scores.masked_fill(~keep, -math.inf)
        return scores.softmax(dim=-1) @ v

    return run


def maskattn_flash(c: Config) -> Callable:
    mask = maskattn_mask(c)
    return lambda q, k, v: ma.attention(q, k, v, mask, backend="flash")


def median_ms(f: Callable, args, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        f(*args)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def as_numpy(out) -> np.ndarray:
    return out.float().numpy() if isinstance(out, torch.Tensor) else out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="",
                        help="comma-separated names or letters (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=0)
    a = parser.parse_args()
    if a.repeats < 1 or a.warmup < 0:
        parser.error("--repeats >= 1 and --warmup >= 0")
    wanted = [w for w in a.configs.split(",") if w]

    def selects(w: str, c: Config) -> bool:  # "b" selects b_causal and b_none
        return w in (c.name, c.name.split("_")[0])

    configs = [c for c in CONFIGS if not wanted or any(selects(w, c) for w in wanted)]
    unknown = [w for w in wanted if not any(selects(w, c) for c in CONFIGS)]
    if unknown:
        parser.error(f"unknown configs {unknown}; known: {[c.name for c in CONFIGS]}")

    torch.set_num_threads(2)
    enable_gqa = sdpa_has_enable_gqa()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), maskattn "
          f"{ma.__version__} (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}); "
          f"GQA in torch SDPA: {'enable_gqa=True' if enable_gqa else 'repeat_interleave k, v'}; "
          f"eager GQA: repeat_interleave k, v; warm-up 1 + {a.warmup}, median of {a.repeats}")

    rows = []
    for c in configs:
        gen = torch.Generator().manual_seed(20261123 + CONFIGS.index(c))
        q = torch.randn(c.b, c.hq, c.lq, c.d, generator=gen).to(c.dtype)
        k = torch.randn(c.b, c.hkv, c.lk, c.d, generator=gen).to(c.dtype)
        v = torch.randn(c.b, c.hkv, c.lk, c.d, generator=gen).to(c.dtype)
        keep = torch_keep(c)
        paths = {"sdpa": torch_sdpa(c, keep, enable_gqa), "eager": torch_eager(c, keep),
                 "maskattn": maskattn_flash(c)}
        bf16 = c.dtype == torch.bfloat16
        atol = BF16_ATOL_PER_MAX_V * float(v.float().abs().max()) if bf16 else FP32_ATOL

        with torch.inference_mode():
            expected = as_numpy(paths["sdpa"](q, k, v))
            diffs = {}
            for name in ("maskattn", "eager"):
                diffs[name] = float(np.abs(as_numpy(paths[name](q, k, v)) - expected).max())
            if diffs["maskattn"] > atol or (not bf16 and diffs["eager"] > atol):
                print(f"{c.name}: max |diff| from torch SDPA {diffs} beyond {atol:.1e}: STOP",
                      file=sys.stderr)
                sys.exit(1)
            ms = {name: median_ms(f, (q, k, v), a.warmup, a.repeats) for name, f in paths.items()}
        rows.append((c, ms, diffs))
        print(f"  {c.name}: done (maskattn {ms['maskattn']:.2f} ms, max |diff| from SDPA "
              f"{diffs['maskattn']:.1e}, eager {diffs['eager']:.1e})", flush=True)

    print()
    header = (f"{'config':9s} {'what':36s} {'SDPA ms':>9s} {'eager ms':>9s} {'maskattn':>9s} "
              f"{'vs SDPA':>8s} {'vs eager':>8s} {'|diff|':>8s}")
    print(header)
    print("-" * len(header))
    for c, ms, diffs in rows:
        print(f"{c.name:9s} {c.what:36s} {ms['sdpa']:9.2f} {ms['eager']:9.2f} "
              f"{ms['maskattn']:9.2f} {ms['sdpa'] / ms['maskattn']:7.2f}x "
              f"{ms['eager'] / ms['maskattn']:7.2f}x {diffs['maskattn']:8.1e}"
              + (f"  ({c.note})" if c.note else ""))
    print("vs SDPA, vs eager: maskattn's speed-up (torch time / maskattn time); |diff|: "
          "maskattn's max |diff| from torch SDPA")


if __name__ == "__main__":
    main()
