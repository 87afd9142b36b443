"""maskattn.mlm_mask against BERT's masked-LM rule and Hugging Face's collator.

What it proves:
  * On a corpus of > 100k tokens ([CLS] ... [SEP] [PAD]...), the fraction of
    non-special tokens chosen and, of the chosen, the [MASK] / random /
    unchanged fractions are within 5 sigma of the probabilities asked for
    (Devlin et al. 2019: 15 %, then 80 / 10 / 10), for the defaults and for
    non-default probabilities.
  * Specials are never chosen and never drawn as random replacements; labels
    hold the original id where chosen and -100 elsewhere; input_ids are
    unchanged where not chosen.
  * Seeds: same seed -> identical, another seed -> different. (L,) input gives
    (L,) outputs; int32 input gives what int64 input gives.
  * word_ids: every token of a chosen word is chosen.
  * transformers.DataCollatorForLanguageModeling on the same corpus: both
    implementations' statistics are within 5 sigma of the expected values and
    of each other (different random streams: statistics, not positions).

Expected values come from the probabilities themselves (binomial counts with
sigma = sqrt(p (1 - p) / n)) and from the collator, never from mlm_mask.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast, DataCollatorForLanguageModeling

import maskattn as ma

# The vocabulary of every test: specials first, as in BERT's vocab.txt.
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = (PAD, UNK, CLS, SEP)  # mask_token_id counts as special by itself
VOCAB = 1000
FIRST_WORD = 5  # ids [5, VOCAB) are ordinary words
NON_SPECIAL_VOCAB = VOCAB - FIRST_WORD
IGNORE = -100
SIGMAS = 5.0


def make_corpus(seed: int = 7, batch: int = 256, length: int = 512) -> np.ndarray:
    """(batch, length) int64 rows: [CLS] random words [SEP] [PAD]... with tail
    padding of random length (batch * length >= 100k tokens)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(FIRST_WORD, VOCAB, size=(batch, length), dtype=np.int64)
    ids[:, 0] = CLS
    used = rng.integers(length // 2, length + 1, size=batch)  # tokens before the padding
    for b, n in enumerate(used):
        ids[b, n - 1] = SEP
        ids[b, n:] = PAD
    return ids


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    ids = make_corpus()
    assert ids.size >= 100_000
    return ids


def is_special(ids: np.ndarray) -> np.ndarray:
    return np.isin(ids, SPECIALS + (MASK,))


def assert_near_probability(count: int, n: int, p: float, what: str) -> None:
    """count / n within SIGMAS binomial standard deviations of p."""
    assert n > 0, what
    sigma = math.sqrt(p * (1.0 - p) / n)
    frac = count / n
    assert abs(frac - p) <= SIGMAS * sigma + 1e-12, (
        f"{what}: {frac:.5f} (n = {n}), expected {p:.5f} +- {SIGMAS} * {sigma:.5f}"
    )


def action_counts(original: np.ndarray, input_ids: np.ndarray, chosen: np.ndarray, mask_id: int):
    """Among chosen tokens: how many read [MASK], another id, or the original."""
    inp, orig = input_ids[chosen], original[chosen]
    masked = int(np.count_nonzero(inp == mask_id))
    unchanged = int(np.count_nonzero(inp == orig))
    random = int(chosen.sum()) - masked - unchanged
    return masked, random, unchanged


def maskattn_observed_probabilities(mask_p: float, random_p: float) -> tuple[float, float, float]:
    """What the chosen tokens read, for maskattn's rule: a random replacement is
    uniform over the non-special ids (never [MASK]), so it equals the original
    with probability 1 / NON_SPECIAL_VOCAB and then reads as 'unchanged'."""
    keep_p = 1.0 - mask_p - random_p
    return (
        mask_p,
        random_p * (1.0 - 1.0 / NON_SPECIAL_VOCAB),
        keep_p + random_p / NON_SPECIAL_VOCAB,
    )


def run_mlm(ids, **kwargs):
    kwargs.setdefault("vocab_size", VOCAB)
    kwargs.setdefault("mask_token_id", MASK)
    kwargs.setdefault("special_token_ids", SPECIALS)
    return ma.mlm_mask(ids, **kwargs)


# ---- the BERT statistics ---------------------------------------------------


@pytest.mark.parametrize(
    "mlm_p, mask_p, random_p",
    [(0.15, 0.8, 0.1), (0.3, 0.5, 0.25)],
    ids=["bert_15_80_10_10", "nondefault_30_50_25_25"],
)
def test_selected_and_replacement_fractions_are_within_5_sigma(corpus, mlm_p, mask_p, random_p):
    kwargs = {}
    if (mlm_p, mask_p, random_p) != (0.15, 0.8, 0.1):  # the defaults are tested as defaults
        kwargs = dict(mlm_probability=mlm_p, mask_replace_prob=mask_p, random_replace_prob=random_p)
    input_ids, labels = run_mlm(corpus, seed=11, **kwargs)
    chosen = labels != IGNORE
    ordinary = ~is_special(corpus)

    assert_near_probability(int(chosen[ordinary].sum()), int(ordinary.sum()), mlm_p, "chosen")
    n = int(chosen.sum())
    masked, random, unchanged = action_counts(corpus, input_ids, chosen, MASK)
    p_mask, p_random, p_unchanged = maskattn_observed_probabilities(mask_p, random_p)
    assert_near_probability(masked, n, p_mask, "[MASK] among chosen")
    assert_near_probability(random, n, p_random, "random among chosen")
    assert_near_probability(unchanged, n, p_unchanged, "unchanged among chosen")


def test_specials_are_never_chosen_nor_drawn_as_replacements(corpus):
    input_ids, labels = run_mlm(corpus, seed=3)
    chosen = labels != IGNORE
    assert not chosen[is_special(corpus)].any()
    # A chosen token reads [MASK] (the mask action), or an ordinary id.
    replaced = chosen & (input_ids != corpus) & (input_ids != MASK)
    assert replaced.sum() > 1000  # enough random replacements to mean something
    assert input_ids[replaced].min() >= FIRST_WORD
    assert input_ids[replaced].max() < VOCAB
    assert not np.isin(input_ids[chosen], SPECIALS).any()
    # Uniform over [FIRST_WORD, VOCAB): the mean of the replacements is within
    # 5 sigma of the uniform mean.
    values = input_ids[replaced].astype(np.float64)
    mean = (FIRST_WORD + VOCAB - 1) / 2.0
    sd = math.sqrt((NON_SPECIAL_VOCAB**2 - 1) / 12.0)
    assert abs(values.mean() - mean) <= SIGMAS * sd / math.sqrt(values.size)


def test_labels_hold_the_original_where_chosen_and_inputs_are_unchanged_elsewhere(corpus):
    input_ids, labels = run_mlm(corpus, seed=5)
    assert input_ids.dtype == np.int64 and labels.dtype == np.int64
    assert input_ids.shape == corpus.shape and labels.shape == corpus.shape
    chosen = labels != IGNORE
    np.testing.assert_array_equal(labels[chosen], corpus[chosen])
    np.testing.assert_array_equal(input_ids[~chosen], corpus[~chosen])
    # Only -100 or a real id in the labels.
    assert set(np.unique(labels[~chosen]).tolist()) == {IGNORE}


def test_probability_edges_choose_nothing_or_everything_and_mask_all(corpus):
    rows = corpus[:16]
    ordinary = ~is_special(rows)
    inp, lab = run_mlm(rows, mlm_probability=0.0)
    np.testing.assert_array_equal(inp, rows)
    assert (lab == IGNORE).all()
    # Everything ordinary chosen, every chosen token becomes [MASK].
    inp, lab = run_mlm(rows, mlm_probability=1.0, mask_replace_prob=1.0, random_replace_prob=0.0)
    np.testing.assert_array_equal(lab != IGNORE, ordinary)
    np.testing.assert_array_equal(inp, np.where(ordinary, MASK, rows))
    # Chosen but always kept: input unchanged, labels everywhere ordinary.
    inp, lab = run_mlm(rows, mlm_probability=1.0, mask_replace_prob=0.0, random_replace_prob=0.0)
    np.testing.assert_array_equal(inp, rows)
    np.testing.assert_array_equal(lab, np.where(ordinary, rows, IGNORE))


# ---- seeds, shapes, dtypes --------------------------------------------------


def test_same_seed_gives_identical_results_and_another_seed_differs(corpus):
    a_in, a_lab = run_mlm(corpus, seed=42)
    b_in, b_lab = run_mlm(corpus, seed=42)
    np.testing.assert_array_equal(a_in, b_in)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_in, c_lab = run_mlm(corpus, seed=43)
    assert (a_lab != c_lab).any()
    assert (a_in != c_in).any()


def test_one_row_input_gives_one_row_outputs(corpus):
    row = corpus[0]
    input_ids, labels = run_mlm(row, seed=9)
    assert input_ids.shape == row.shape and labels.shape == row.shape
    chosen = labels != IGNORE
    assert chosen.any()
    np.testing.assert_array_equal(labels[chosen], row[chosen])
    np.testing.assert_array_equal(input_ids[~chosen], row[~chosen])
    assert not chosen[is_special(row)].any()


def test_int32_and_torch_inputs_give_what_int64_input_gives(corpus):
    ref_in, ref_lab = run_mlm(corpus, seed=21)
    for ids in (corpus.astype(np.int32), torch.from_numpy(corpus)):
        inp, lab = run_mlm(ids, seed=21)
        assert inp.dtype == np.int64 and lab.dtype == np.int64
        np.testing.assert_array_equal(inp, ref_in)
        np.testing.assert_array_equal(lab, ref_lab)


# ---- whole words ------------------------------------------------------------


def make_word_ids(ids: np.ndarray, seed: int = 13) -> np.ndarray:
    """Words of 1..4 consecutive ordinary tokens, numbered per row; -1 on specials."""
    rng = np.random.default_rng(seed)
    words = np.full(ids.shape, -1, dtype=np.int64)
    for b in range(ids.shape[0]):
        l, w = 0, 0
        while l < ids.shape[1]:
            n = int(rng.integers(1, 5))
            span = slice(l, min(l + n, ids.shape[1]))
            words[b, span] = w
            l, w = l + n, w + 1
    words[is_special(ids)] = -1
    return words


def test_word_ids_choose_every_token_of_a_chosen_word(corpus):
    words = make_word_ids(corpus)
    input_ids, labels = run_mlm(corpus, seed=17, word_ids=words)
    chosen = labels != IGNORE
    assert not chosen[is_special(corpus)].any()

    # Per (row, word): all chosen or none.
    rows = np.repeat(np.arange(corpus.shape[0]), corpus.shape[1]).reshape(corpus.shape)
    in_word = words >= 0
    key = rows[in_word] * (corpus.shape[1] + 1) + words[in_word]
    flags = chosen[in_word].astype(np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    n_chosen = np.bincount(inverse, weights=flags)
    n_tokens = np.bincount(inverse)
    partial = (n_chosen > 0) & (n_chosen < n_tokens)
    assert not partial.any(), f"{int(partial.sum())} words partly chosen"
    assert (n_tokens > 1).sum() > 1000  # multi-token words do occur
    # One draw per word: about 15 % of the words are chosen.
    assert_near_probability(int((n_chosen > 0).sum()), uniq.size, 0.15, "chosen words")
    # Each chosen token still gets its own 80/10/10 draw.
    n = int(chosen.sum())
    masked, random, unchanged = action_counts(corpus, input_ids, chosen, MASK)
    p_mask, p_random, p_unchanged = maskattn_observed_probabilities(0.8, 0.1)
    assert_near_probability(masked, n, p_mask, "[MASK] among chosen (whole words)")
    assert_near_probability(random, n, p_random, "random among chosen (whole words)")
    assert_near_probability(unchanged, n, p_unchanged, "unchanged among chosen (whole words)")


# ---- Hugging Face's DataCollatorForLanguageModeling ------------------------


@pytest.fixture(scope="module")
def bert_tokenizer(tmp_path_factory):
    """A BERT tokenizer over a vocab.txt written here: [PAD]=0, [UNK]=1,
    [CLS]=2, [SEP]=3, [MASK]=4, then the words w5 .. w999 (no download)."""
    folder = tmp_path_factory.mktemp("bert_vocab")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += [f"w{i}" for i in range(FIRST_WORD, VOCAB)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tok = BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    assert len(tok) == VOCAB
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id) == SPECIALS
    assert tok.mask_token_id == MASK
    assert tok("w5 w999")["input_ids"] == [CLS, 5, 999, SEP]
    return tok


def collator_observed_probabilities(mask_p: float, random_p: float) -> tuple[float, float, float]:
    """What the collator's chosen tokens read: its random replacement is
    torch.randint(len(tokenizer)), uniform over the whole vocabulary, so it
    reads [MASK] with probability 1 / VOCAB and the original with 1 / VOCAB."""
    keep_p = 1.0 - mask_p - random_p
    return (
        mask_p + random_p / VOCAB,
        random_p * (1.0 - 2.0 / VOCAB),
        keep_p + random_p / VOCAB,
    )


@pytest.mark.parametrize(
    "mlm_p, mask_p, random_p",
    [(0.15, 0.8, 0.1), (0.3, 0.5, 0.25)],
    ids=["bert_15_80_10_10", "nondefault_30_50_25_25"],
)
def test_statistics_agree_with_transformers_data_collator(
    bert_tokenizer, corpus, mlm_p, mask_p, random_p
):
    torch.manual_seed(1234)
    collator = DataCollatorForLanguageModeling(
        tokenizer=bert_tokenizer,
        mlm=True,
        mlm_probability=mlm_p,
        mask_replace_prob=mask_p,
        random_replace_prob=random_p,
        return_tensors="pt",
        seed=1234,
    )
    # Rows of equal length: the collator stacks them as they are (no padding added).
    batch = collator([row.tolist() for row in corpus])
    hf_in, hf_lab = batch["input_ids"].numpy(), batch["labels"].numpy()
    assert hf_in.shape == corpus.shape

    ma_in, ma_lab = run_mlm(
        corpus,
        seed=1234,
        mlm_probability=mlm_p,
        mask_replace_prob=mask_p,
        random_replace_prob=random_p,
    )

    ordinary = ~is_special(corpus)
    n_ordinary = int(ordinary.sum())
    stats = {}
    for name, inp, lab, observed in (
        ("transformers", hf_in, hf_lab, collator_observed_probabilities(mask_p, random_p)),
        ("maskattn", ma_in, ma_lab, maskattn_observed_probabilities(mask_p, random_p)),
    ):
        chosen = lab != IGNORE
        assert not chosen[~ordinary].any(), f"{name} chose a special token"
        np.testing.assert_array_equal(lab[chosen], corpus[chosen], err_msg=name)
        np.testing.assert_array_equal(inp[~chosen], corpus[~chosen], err_msg=name)
        n = int(chosen.sum())
        counts = action_counts(corpus, inp, chosen, MASK)
        assert_near_probability(int(chosen[ordinary].sum()), n_ordinary, mlm_p, f"{name}: chosen")
        for what, count, p in zip(("[MASK]", "random", "unchanged"), counts, observed):
            assert_near_probability(count, n, p, f"{name}: {what} among chosen")
        stats[name] = (n, n_ordinary, counts)

    # The two against each other: difference of two independent binomial
    # fractions within 5 sigma of 0.
    def close(f1, n1, f2, n2, p, what):
        sigma = math.sqrt(p * (1 - p) / n1 + p * (1 - p) / n2)
        assert abs(f1 - f2) <= SIGMAS * sigma, f"{what}: {f1:.5f} vs {f2:.5f}, sigma {sigma:.5f}"

    (n_hf, n_ord, c_hf), (n_ma, _, c_ma) = stats["transformers"], stats["maskattn"]
    close(n_hf / n_ord, n_ord, n_ma / n_ord, n_ord, mlm_p, "chosen fraction")
    probabilities = (mask_p, random_p, 1 - mask_p - random_p)
    for what, a, b, p in zip(("[MASK]", "random", "unchanged"), c_hf, c_ma, probabilities):
        close(a / n_hf, n_hf, b / n_ma, n_ma, p, f"{what} among chosen")
