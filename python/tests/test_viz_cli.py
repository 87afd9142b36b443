"""`maskattn viz mask | pe | attention`, the command-line tool built next to
this module (<build>/cli/maskattn): masks from flags and from arrays other
libraries saved (.npy written by numpy, .safetensors by the safetensors
package), checked against the Python module's pictures of the same masks
(the same C++ renderer: the PNG files must be byte for byte the same) and
against what the mask means (colours at cells, decoded with Pillow).
"""

from __future__ import annotations

import io
import pathlib
import subprocess

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

import maskattn as ma
from test_embed_cli import TINY_MODEL, cli_path
from test_viz import ALLOWED, MASKED, cell, frames


def viz(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli_path()), "viz", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def ok(*args: str, cwd: pathlib.Path) -> str:
    r = viz(*args, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def fails(*args: str, cwd: pathlib.Path) -> str:
    r = viz(*args, cwd=cwd)
    assert r.returncode != 0, r.stdout
    assert r.stderr.startswith("maskattn: ") or "--" in r.stderr, r.stderr
    return r.stderr


def test_mask_from_flags_default_file_name(tmp_path):
    out = ok("mask", "--causal", "--lengths", "5,3,8", cwd=tmp_path)
    assert "over (B=3, H=1, Lq=8, Lk=8)" in out
    assert "wrote mask.png" in out
    png = (tmp_path / "mask.png").read_bytes()
    assert png == ma.viz.mask_png(ma.causal() & ma.key_lengths([5, 3, 8]), 3, 1, 8, 8)


# Masks are made inside the test (a Mask held by pytest's parameters until the
# interpreter exits is reported by nanobind as a leak).
@pytest.mark.parametrize(
    ("flags", "make_mask", "shape"),
    [
        (["--window", "2,1", "--q-len", "6"], lambda: ma.sliding_window(2, 1), (1, 1, 6, 6)),
        (["--prefix", "3", "--k-len", "7"], lambda: ma.prefix_lm(3), (1, 1, 7, 7)),
        (["--documents", "0,0,1,1,1"], lambda: ma.documents(np.array([0, 0, 1, 1, 1])),
         (1, 1, 5, 5)),
        (["--documents", "0,0,1;0,1,1"],
         lambda: ma.documents(np.array([[0, 0, 1], [0, 1, 1]])), (2, 1, 3, 3)),
        (["--causal", "bottom-right", "--q-len", "3", "--k-len", "9"],
         lambda: ma.causal("bottom_right"), (1, 1, 3, 9)),
        (["--query-lengths", "2,4", "--causal", "--batch", "2", "--heads", "3"],
         lambda: ma.causal() & ma.query_lengths([2, 4]), (2, 3, 4, 4)),
    ],
)
def test_mask_flags_match_the_library(tmp_path, flags, make_mask, shape):
    ok("mask", *flags, "-o", "m.png", cwd=tmp_path)
    diagonal = "bottom_right" if "bottom-right" in flags else "top_left"
    assert (tmp_path / "m.png").read_bytes() == ma.viz.mask_png(make_mask(), *shape,
                                                               diagonal=diagonal)


def test_torch_mha_masks_from_npy_files(tmp_path):
    # nn.MultiheadAttention's convention: True = masked. A 3-D attn_mask is
    # (B * heads, L, S); key_padding_mask (B, S).
    rng = np.random.default_rng(5)
    attn = rng.random((4, 3, 5)) < 0.3  # B = 2, heads = 2
    kpm = np.array([[False] * 5, [False, False, False, True, True]])
    np.save(tmp_path / "attn.npy", attn)
    np.save(tmp_path / "kpm.npy", np.asfortranarray(kpm))  # any layout numpy writes
    out = ok("mask", "--from-torch-mha", "attn.npy", "--key-padding-mask", "kpm.npy", "--heads",
             "2", "-o", "t.png", cwd=tmp_path)
    assert "over (B=2, H=2, Lq=3, Lk=5)" in out
    want = ma.viz.mask_png(ma.from_torch_mha_mask(attn, kpm, num_heads=2), 2, 2, 3, 5)
    assert (tmp_path / "t.png").read_bytes() == want
    # And what it shows: batch 1, head 0, query 0: keys 3, 4 are padding.
    img = np.asarray(Image.open(tmp_path / "t.png"))
    boxes = [b for b in frames(img) if b[2] != 16]
    assert len(boxes) == 4  # (batch, head) panels: the heads differ
    for j in range(5):
        masked = attn[2, 0, j] or kpm[1, j]
        assert cell(img, boxes[2], 3, 5, 0, j) == (MASKED if masked else ALLOWED), j


def test_other_conventions_and_safetensors(tmp_path):
    keep = np.tril(np.ones((4, 4), dtype=bool))
    save_file({"mask": keep, "other": np.zeros(2, np.float32)}, str(tmp_path / "m.safetensors"))
    ok("mask", "--from-sdpa", "m.safetensors:mask", "-o", "s.png", cwd=tmp_path)
    assert (tmp_path / "s.png").read_bytes() == ma.viz.mask_png(ma.from_sdpa_mask(keep), 1, 1, 4, 4)
    err = fails("mask", "--from-sdpa", "m.safetensors", cwd=tmp_path)
    assert "--from-sdpa" in err and "mask, other" in err

    hf = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.int64)
    np.save(tmp_path / "hf.npy", hf)
    out = ok("mask", "--from-hf", "hf.npy", "--causal", "-o", "h.png", cwd=tmp_path)
    assert "over (B=2, H=1, Lq=4, Lk=4)" in out
    want = ma.viz.mask_png(ma.causal() & ma.from_hf_attention_mask(hf), 2, 1, 4, 4)
    assert (tmp_path / "h.png").read_bytes() == want

    bias = np.where(keep, 0.0, -np.inf).astype(np.float32)
    np.save(tmp_path / "bias.npy", bias)
    np.save(tmp_path / "block.npy", ~keep)
    ok("mask", "--bias", "bias.npy", "-o", "b.png", cwd=tmp_path)
    ok("mask", "--block", "block.npy", "-o", "k.png", cwd=tmp_path)
    assert (tmp_path / "b.png").read_bytes() == ma.viz.mask_png(ma.bias(bias), 1, 1, 4, 4)
    assert (tmp_path / "k.png").read_bytes() == ma.viz.mask_png(ma.block(~keep), 1, 1, 4, 4)
    # Both are the look-ahead mask: the same cells as causal()'s picture.
    causal = np.asarray(Image.open(io.BytesIO(ma.viz.mask_png(ma.causal(), 1, 1, 4, 4))))
    for name in ("b.png", "k.png"):
        img = np.asarray(Image.open(tmp_path / name))
        (box,) = [b for b in frames(img) if b[2] != 16]
        (want,) = [b for b in frames(causal) if b[2] != 16]
        assert [cell(img, box, 4, 4, i, j) for i in range(4) for j in range(4)] == \
            [cell(causal, want, 4, 4, i, j) for i in range(4) for j in range(4)]


def test_html_output_and_labels(tmp_path):
    out = ok("mask", "--causal", "--tokens", "the cat sat", "-o", "m.html", cwd=tmp_path)
    assert "wrote m.html" in out
    html = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert html == ma.viz.mask_html(ma.causal(), 1, 1, 3, 3, query_labels=["the", "cat", "sat"],
                                    key_labels=["the", "cat", "sat"])
    ok("mask", "--causal", "--q-len", "3", "--format", "html", "-o", "plain", cwd=tmp_path)
    assert (tmp_path / "plain").read_text(encoding="utf-8").startswith("<!")


def test_pe(tmp_path):
    ok("pe", "--length", "30", "--dim", "16", "--dims", "0,2", "-o", "pe.png", cwd=tmp_path)
    assert (tmp_path / "pe.png").read_bytes() == ma.viz.encoding_png(
        ma.sinusoidal_encoding(30, 16), dims=[0, 2])
    ok("pe", cwd=tmp_path)  # defaults: 100 x 64, pe.png
    assert Image.open(tmp_path / "pe.png").size[1] > 600


def test_attention_of_one_call_from_q_and_k(tmp_path):
    rng = np.random.default_rng(9)
    q = rng.standard_normal((2, 2, 5, 4)).astype(np.float32)
    k = rng.standard_normal((2, 1, 5, 4)).astype(np.float32)  # one key/value head: GQA
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "k.npy", k.astype(np.float64))  # float64 files are read too
    ok("attention", "--q", "q.npy", "--k", "k.npy", "--causal", "--lengths", "5,3", "--tokens",
       "a b c d e", "-o", "a.png", cwd=tmp_path)
    mask = ma.causal() & ma.key_lengths([5, 3])
    v = np.zeros((2, 1, 5, 1), np.float32)
    _, w = ma.attention(q, k, v, mask, need_weights=True)
    labels = list("abcde")
    want = ma.viz.attention_png(w, mask, query_labels=labels, key_labels=labels)
    assert (tmp_path / "a.png").read_bytes() == want


def test_too_many_panels_for_a_png_say_how_to_choose(tmp_path):
    err = fails("attention", "--model", str(TINY_MODEL), *(["--text", "a b"] * 70), "-o", "a.png",
                cwd=tmp_path)
    assert "--batch-index" in err and ".html" in err
    ok("attention", "--model", str(TINY_MODEL), *(["--text", "a b"] * 70), "-o", "a.html",
       cwd=tmp_path)


def test_attention_of_a_model_on_sentences(tmp_path):
    out = ok("attention", "--model", str(TINY_MODEL), "--text", "the cat sat", "--text",
             "a dog", "--layer", "1", "--batch-index", "1", "-o", "m.png", cwd=tmp_path)
    assert "2 sentences" in out and "padded to" in out
    ok("attention", "--model", str(TINY_MODEL), "--text", "the cat sat", "--text", "a dog",
       "--pack", "-o", "m.html", cwd=tmp_path)
    html = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert "documents" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mask", "--causal", "-o", "x.jpg"], "--output"),
        (["mask", "--causal", "--format", "gif"], "--format"),
        (["mask", "--from-torch-mha", "missing.npy"], "--from-torch-mha"),
        (["mask", "--window", "3,x"], "--window"),
        (["mask", "--documents", "0,1;0"], "--documents"),
        (["mask", "--causal", "maybe"], "--causal"),
        (["mask", "--lengths", "5,3", "--batch", "3"], "mask"),
        (["mask", "--q-len", "0"], "--q-len"),
        (["mask", "--lengths", "9", "--k-len", "4"], "mask"),
        (["attention"], "either --text"),
        (["attention", "--q", "q.npy"], "--k"),
        (["attention", "--text", "hi", "--q", "q.npy", "--k", "q.npy"], "either --text"),
        (["attention", "--text", "hi", "--tokens", "a"], "--tokens"),
        (["pe", "--dim", "7"], "dim"),
        (["mask", "--batch", "300", "--causal", "--q-len", "2"], "a smaller --batch"),
        (["pe", "--layout", "halves"], "--layout"),
    ],
)
def test_errors_name_the_flag(tmp_path, args, message):
    assert message in fails(*args, cwd=tmp_path)


def test_token_labels_set_the_lengths_and_name_their_flag(tmp_path):
    out = ok("mask", "--causal", "--query-tokens", "x y", "--key-tokens", "a b c d", "-o", "t.png",
             cwd=tmp_path)
    assert "Lq=2, Lk=4" in out
    assert "--tokens" in fails("mask", "--causal", "--q-len", "4", "--tokens", "a b", cwd=tmp_path)
    assert "--key-tokens" in fails("mask", "--k-len", "4", "--key-tokens", "a b", cwd=tmp_path)
