#!/usr/bin/env python3
"""Writes the seed corpora of the two kernel fuzzers (docs/fuzzing.md).

    python3 fuzz/make_kernel_seeds.py      # from the repository root

mask_tiles_fuzzer and flash_vs_reference_fuzzer read their input through
libFuzzer's FuzzedDataProvider, so any bytes are a valid input: a seed is
a few hundred pseudo-random bytes (fixed seeds, so the files are
reproducible), a few sizes, plus the all-zero and all-0xff inputs that
pick the first and the last choice of everything. The fuzzer's mutations do
the rest; the seeds only keep the first seconds of a run from starting
empty. Rewrites fuzz/corpus/<target>/seed_*.
"""
import pathlib
import random

TARGETS = ("mask_tiles_fuzzer", "flash_vs_reference_fuzzer")
SIZES = (16, 64, 200, 600, 1500, 4000)

root = pathlib.Path(__file__).resolve().parent / "corpus"
for target in TARGETS:
    out = root / target
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("seed_*"):
        old.unlink()
    rng = random.Random(target)
    for size in SIZES:
        (out / f"seed_random_{size}").write_bytes(bytes(rng.randrange(256) for _ in range(size)))
    (out / "seed_zeros").write_bytes(bytes(256))
    (out / "seed_ones").write_bytes(bytes([0xFF]) * 256)
    print(f"{out}: {len(SIZES) + 2} seeds")
