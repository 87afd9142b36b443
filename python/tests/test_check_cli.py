"""`maskattn check`, the command-line leak checker built next to this module
(<build>/cli/maskattn): masks from flags and from arrays other libraries
saved (.npy written by numpy from torch tensors, .safetensors), checked
against an expectation given by the same flags prefixed --expect-. A leak
prints "LEAK", the first leaks and exits with status 2; a correct mask
prints "no leak" and exits 0; bad input exits 1 naming the flag. The counts
printed are the Python module's for the same masks.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

import numpy as np
import torch
from safetensors.numpy import save_file

import maskattn as ma
from test_embed_cli import cli_path

LEAK_EXIT = 2


def check(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli_path()), "check", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def leaks(*args: str, cwd: pathlib.Path) -> str:
    r = check(*args, cwd=cwd)
    assert r.returncode == LEAK_EXIT, (r.returncode, r.stdout, r.stderr)
    assert "LEAK: " in r.stdout
    return r.stdout


def passes(*args: str, cwd: pathlib.Path) -> str:
    r = check(*args, cwd=cwd)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "no leak: all " in r.stdout
    return r.stdout


def listed(out: str) -> list[tuple[int, ...]]:
    """The rows of the leak table: (b, h, i, j)."""
    rows = re.findall(r"^ +(\d+) +(\d+) +(\d+) +(\d+) +[0-9.e+-]+$", out, re.M)
    return [tuple(int(x) for x in row) for row in rows]


def test_inverted_torch_mask_from_npy(tmp_path):
    L = 10
    ones = torch.ones(L, L)
    np.save(tmp_path / "inverted.npy", (torch.triu(ones, 1) == 0).numpy())  # the write-ups' bug
    np.save(tmp_path / "right.npy", torch.triu(ones, 1).bool().numpy())  # True = masked (MHA)
    out = leaks("--from-torch-mha", "inverted.npy", "--expect-causal", cwd=tmp_path)
    assert "LEAK: 45 of 45 hidden pairs of (B=1, H=1, Lq=10, Lk=10)" in out
    assert listed(out) == [(0, 0, 0, j) for j in range(1, 10)] + [(0, 0, 1, 2)]  # --show 10
    assert "... and 35 more" in out
    out = passes("--from-torch-mha", "right.npy", "--expect-causal", cwd=tmp_path)
    assert "mask under test: from_torch_mha_mask: attn_mask" in out
    report = ma.check_leaks(ma.from_torch_mha_mask(np.load(tmp_path / "right.npy")), ma.causal(),
                            1, 1, L, L)
    assert report.verdict in out


def test_hf_padding_from_safetensors(tmp_path):
    attention_mask = np.array([[1] * 7 + [0] * 3, [1] * 4 + [0] * 6], dtype=np.int64)
    save_file({"attention_mask": attention_mask}, str(tmp_path / "batch.safetensors"))
    passes("--from-hf", "batch.safetensors", "--expect-lengths", "7,4", cwd=tmp_path)
    # Padding forgotten: a look-ahead mask alone lets queries read padded keys.
    out = leaks("--causal", "--expect-causal", "--expect-lengths", "7,4", "--show", "100",
                cwd=tmp_path)
    rows = listed(out)
    assert rows and all(j >= (7, 4)[b] for b, _, _, j in rows)
    expect = ma.causal() & ma.key_lengths([7, 4])
    report = ma.check_leaks(ma.causal(), expect, 2, 1, 7, 7)
    counts = f"LEAK: {report.leak_count} of {report.hidden_pairs} hidden pairs"
    assert f"{counts} of (B=2, H=1, Lq=7, Lk=7)" in out


def test_misaligned_look_ahead(tmp_path):
    out = leaks("--causal", "bottom-right", "--q-len", "4", "--k-len", "12", "--expect-causal",
                cwd=tmp_path)
    assert "LEAK: 32 of 38 hidden pairs of (B=1, H=1, Lq=4, Lk=12)" in out
    out = passes("--causal", "--q-len", "4", "--k-len", "12", "--expect-causal", "bottom-right",
                 cwd=tmp_path)
    assert "note: the mask also hides 32 pairs the expectation allows" in out


def test_window_off_by_one_and_the_right_window(tmp_path):
    out = leaks("--window", "3", "--expect-window", "2", "--q-len", "12", "--show", "100",
                cwd=tmp_path)
    assert {j for _, _, i, j in listed(out)} == set(range(0, 9))
    assert all(j == i - 3 for _, _, i, j in listed(out))
    passes("--window", "2", "--expect-window", "2", "--q-len", "12", "--backend", "reference",
           cwd=tmp_path)


def test_documents_and_heads(tmp_path):
    # Packed sequences: a causal mask alone lets document 1 read document 0.
    out = leaks("--causal", "--heads", "2", "--expect-documents", "0,0,0,1,1", cwd=tmp_path)
    assert "(B=1, H=2, Lq=5, Lk=5)" in out
    passes("--causal", "--documents", "0,0,0,1,1", "--expect-documents", "0,0,0,1,1",
           "--expect-causal", cwd=tmp_path)


def test_tolerance_for_a_finite_penalty(tmp_path):
    L = 6
    penalty = np.triu(np.full((L, L), -30.0, np.float32), 1)  # a "large negative number"
    np.save(tmp_path / "penalty.npy", penalty)
    leaks("--bias", "penalty.npy", "--expect-causal", cwd=tmp_path)
    out = passes("--bias", "penalty.npy", "--expect-causal", "--tolerance", "0.01", cwd=tmp_path)
    assert "outputs within 0.01" in out


def test_bad_input_exits_1_naming_the_flag(tmp_path):
    for args, message in [
        (["--causal"], "--expect-*: expected an expectation"),
        (["--causal", "--expect-causal", "sideways"],
         "--expect-causal: expected top-left or bottom-right"),
        (["--causal", "--expect-window", "x"], "--expect-window"),
        (["--causal", "--expect-causal", "--backend", "gpu"], "--backend"),
        (["--causal", "--expect-causal", "--head-dim", "0"], "--head-dim"),
        (["--causal", "--expect-causal", "--tolerance", "-1"], "--tolerance"),
        (["--causal", "--expect-from-sdpa", "missing.npy"], "--expect-from-sdpa"),
        # The lengths do not fit the shape: the mask under test, or the expectation.
        (["--lengths", "3,4", "--expect-causal", "--batch", "3"], "mask: key_lengths: expected"),
        (["--causal", "--expect-lengths", "3,4", "--batch", "3"], "expect: key_lengths: expected"),
    ]:
        r = check(*args, cwd=tmp_path)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)


def test_help_lists_both_groups(tmp_path):
    r = subprocess.run([str(cli_path()), "check", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    assert "The mask under test:" in r.stdout and "What must be hidden" in r.stdout
    assert "--expect-lengths" in r.stdout and "--expect-from-torch-mha" in r.stdout
