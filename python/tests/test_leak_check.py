"""ma.check_leaks and ma.check_model_leaks.

What it proves: masks built with PyTorch in the wrong convention (the
write-ups' inverted boolean, an nn.MultiheadAttention mask handed to
scaled_dot_product_attention) are flagged, and the pairs reported are
exactly those the expectation hides and the mask lets through -- which
PyTorch's own attention confirms by changing its output there; the same
arrays in the right convention pass. A Hugging Face padding mask, a
look-ahead mask misaligned for Lq != Lk and an off-by-one window are caught.
At model level, a torch decoder layer with its causal mask passes and one
without it leaks every future token; a padding mask left out of an encoder
is found. Bad arguments raise ValueError naming them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import maskattn as ma

torch.set_num_threads(2)


def leak_set(report: ma.LeakReport) -> set[tuple[int, int, int, int]]:
    return {(leak.b, leak.h, leak.i, leak.j) for leak in report.leaks}


def oracle(mask: ma.Mask, expect: ma.Mask, shape) -> set[tuple[int, int, int, int]]:
    """Pairs that leak by definition: hidden by expect, allowed by mask."""
    m = np.isfinite(mask.materialize(*shape))
    e = np.isfinite(expect.materialize(*shape))
    return {tuple(int(x) for x in p) for p in np.argwhere(m & ~e)}


ALL = 10**9  # max_listed: list every leak


def test_torch_inverted_boolean_is_flagged_and_the_right_one_passes():
    L, shape = 32, (2, 2, 32, 32)
    ones = torch.ones(L, L)
    # nn.MultiheadAttention reads bool True as "masked". The write-ups built
    # the look-ahead mask as triu(ones, 1) == 0: True on and below the
    # diagonal, so every query attends only to its future.
    inverted = ma.from_torch_mha_mask(torch.triu(ones, 1) == 0)
    report = ma.check_leaks(inverted, ma.causal(), *shape, max_listed=ALL)
    assert report.leaks_found
    assert report.leak_count == report.hidden_pairs == 2 * 2 * L * (L - 1) // 2
    assert leak_set(report) == oracle(inverted, ma.causal(), shape)
    assert report.over_masked == 2 * 2 * L * (L + 1) // 2
    assert all(leak.j > leak.i and leak.change > 0 for leak in report.leaks)
    assert str(report).startswith("LEAK: 1984 of 1984 hidden pairs")

    right = ma.from_torch_mha_mask(torch.triu(ones, 1).bool())
    ok = ma.check_leaks(right, ma.causal(), *shape)
    assert not ok.leaks_found and ok.leak_count == 0 and ok.leaks == []
    assert ok.hidden_pairs == 2 * 2 * L * (L - 1) // 2
    assert ok.over_masked == 0 and ok.first_over_masked is None
    assert ok.runs <= 1 + L + L // 4
    assert ok.verdict.startswith("no leak: all 1984 hidden pairs of (B=2, H=2, Lq=32, Lk=32)")


def test_mha_mask_given_to_sdpa_leaks_in_torch_too():
    # torch's own attention agrees: the rows the checker names change in
    # F.scaled_dot_product_attention when the key is perturbed there.
    L = 12
    mha_style = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)  # True = masked (MHA)
    report = ma.check_leaks(ma.from_sdpa_mask(mha_style), ma.causal(), 1, 1, L, L, max_listed=ALL)
    assert report.leak_count == L * (L - 1) // 2
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, L, 8, generator=g) for _ in range(3))
    base = F.scaled_dot_product_attention(q, k, v, attn_mask=mha_style)
    j = 7
    k2, v2 = k.clone(), v.clone()
    k2[..., j, :] *= -3
    v2[..., j, :] += 4
    moved = F.scaled_dot_product_attention(q, k2, v2, attn_mask=mha_style)
    changed = {i for i in range(L) if not torch.equal(moved[0, 0, i], base[0, 0, i])}
    assert changed == {leak.i for leak in report.leaks if leak.j == j}
    # In SDPA's convention (True = may attend) the same pattern is the lower
    # triangle, and it passes.
    lower = torch.tril(torch.ones(L, L, dtype=torch.bool))
    assert not ma.check_leaks(ma.from_sdpa_mask(lower), ma.causal(), 1, 1, L, L).leaks_found


def test_hf_padding_mask_and_a_mask_missing_padding():
    lengths = [7, 4, 10]
    attention_mask = (np.arange(10)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    expect = ma.causal() & ma.key_lengths(lengths)
    shape = (3, 2, 10, 10)
    good = ma.causal() & ma.from_hf_attention_mask(attention_mask)
    assert not ma.check_leaks(good, expect, *shape).leaks_found
    report = ma.check_leaks(ma.causal(), expect, *shape, max_listed=ALL)
    assert leak_set(report) == oracle(ma.causal(), expect, shape)
    assert all(leak.j >= lengths[leak.b] for leak in report.leaks)


def test_misaligned_look_ahead_when_lq_differs_from_lk():
    shape = (1, 1, 4, 12)  # 4 new queries over a cache of 12 keys
    leak = ma.check_leaks(ma.causal("bottom_right"), ma.causal("top_left"), *shape, max_listed=ALL)
    assert leak.leak_count == 4 * 8
    assert leak_set(leak) == oracle(ma.causal("bottom_right"), ma.causal("top_left"), shape)
    over = ma.check_leaks(ma.causal("top_left"), ma.causal("bottom_right"), *shape)
    assert not over.leaks_found
    assert over.over_masked == 4 * 8 and over.first_over_masked == (0, 0, 0, 1)
    assert "note: the mask also hides 32 pairs the expectation allows" in str(over)


def test_window_off_by_one():
    report = ma.check_leaks(ma.sliding_window(4), ma.sliding_window(3), 1, 1, 30, 30,
                            max_listed=ALL)
    assert report.leak_count == 30 - 4
    assert all(leak.j == leak.i - 4 for leak in report.leaks)


def test_report_list_is_bounded_and_backends_agree():
    shape = (2, 3, 20, 20)
    reports = [ma.check_leaks(None, ma.causal(), *shape, max_listed=4, backend=b)
               for b in ("reference", "flash")]
    for r in reports:
        assert r.leak_count == 2 * 3 * 20 * 19 // 2
        assert [(x.b, x.h, x.i, x.j) for x in r.leaks] == [(0, 0, 0, j) for j in range(1, 5)]
        assert "... and 1136 more" in str(r)
        assert r.shape == shape and r.model is False
    # The same q, k, v (same seed) on both backends: the same changes to 1e-5.
    for a, b in zip(reports[0].leaks, reports[1].leaks):
        assert a.change == pytest.approx(b.change, rel=1e-5, abs=1e-6)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="mask: expected a maskattn.Mask"):
        ma.check_leaks(np.ones((4, 4), bool), ma.causal(), 1, 1, 4, 4)
    with pytest.raises(ValueError, match="expect: expected a maskattn.Mask"):
        ma.check_leaks(ma.causal(), np.ones((4, 4), bool), 1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"batch, heads, q_len, k_len: expected"):
        ma.check_leaks(ma.causal(), ma.causal(), 1, 1, 0, 4)
    with pytest.raises(ValueError, match="tolerance"):
        ma.check_leaks(ma.causal(), ma.causal(), 1, 1, 4, 4, tolerance=-1)
    with pytest.raises(ValueError, match="head_dim"):
        ma.check_leaks(ma.causal(), ma.causal(), 1, 1, 4, 4, head_dim=0)
    with pytest.raises(ValueError, match="^maskattn: scale"):
        ma.check_leaks(ma.causal(), ma.causal(), 1, 1, 4, 4, scale=float("inf"))
    with pytest.raises(ValueError, match="backend"):
        ma.check_leaks(ma.causal(), ma.causal(), 1, 1, 4, 4, backend="gpu")
    with pytest.raises(ValueError, match="expect"):
        ma.check_leaks(ma.causal(), ma.key_lengths([1, 2]), 1, 1, 4, 4)


# ---- models ------------------------------------------------------------------

VOCAB = 17


def torch_layer(seed: int) -> tuple[torch.nn.Embedding, torch.nn.TransformerEncoderLayer]:
    torch.manual_seed(seed)
    embed = torch.nn.Embedding(VOCAB, 16)
    layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0,
                                             batch_first=True)
    return embed.eval(), layer.eval()


def test_torch_decoder_layer_with_and_without_its_look_ahead_mask():
    embed, layer = torch_layer(0)
    tokens = np.random.default_rng(1).integers(0, VOCAB, (2, 10))

    def decoder(causal: bool):
        def run(ids: np.ndarray):
            with torch.no_grad():
                x = embed(torch.from_numpy(ids))
                L = x.shape[1]
                mask = torch.nn.Transformer.generate_square_subsequent_mask(L) if causal else None
                return layer(x, src_mask=mask, is_causal=causal)
        return run

    ok = ma.check_model_leaks(decoder(True), tokens, ma.causal(), vocab_size=VOCAB)
    assert not ok.leaks_found, str(ok)
    assert ok.hidden_pairs == 2 * 10 * 9 // 2 and ok.model and ok.shape == (2, 1, 10, 10)
    leak = ma.check_model_leaks(decoder(False), tokens, ma.causal(), vocab_size=VOCAB,
                                max_listed=ALL)
    assert leak.leak_count == leak.hidden_pairs
    assert {(x.b, x.i, x.j) for x in leak.leaks} == {
        (b, i, j) for b in range(2) for i in range(10) for j in range(i + 1, 10)}
    assert "output i of row b changed when token j changed" in str(leak)


def test_torch_encoder_padding():
    embed, layer = torch_layer(2)
    lengths = [6, 9, 3]
    tokens = np.random.default_rng(3).integers(0, VOCAB, (3, 9))
    padding = torch.arange(9)[None, :] >= torch.tensor(lengths)[:, None]  # True = padding

    def encoder(use_padding: bool):
        def run(ids: np.ndarray):
            with torch.no_grad():
                x = embed(torch.from_numpy(ids))
                return layer(x, src_key_padding_mask=padding if use_padding else None).numpy()
        return run

    expect = ma.key_lengths(lengths) & ma.query_lengths(lengths)
    ok = ma.check_model_leaks(encoder(True), tokens, expect, vocab_size=VOCAB)
    assert not ok.leaks_found, str(ok)
    assert ok.hidden_pairs == 6 * 3 + 3 * 6
    leak = ma.check_model_leaks(encoder(False), tokens, expect, vocab_size=VOCAB, max_listed=ALL)
    assert leak.leak_count == leak.hidden_pairs
    assert all(x.i < lengths[x.b] <= x.j for x in leak.leaks)


def test_model_errors():
    tokens = np.zeros((2, 5), np.int64)
    def same(ids):
        return ids[..., None].astype(np.float32)
    with pytest.raises(ValueError, match="vocab_size"):
        ma.check_model_leaks(same, tokens, ma.causal(), vocab_size=1)
    with pytest.raises(ValueError, match="tokens"):
        ma.check_model_leaks(same, np.zeros(5, np.int64), ma.causal(), vocab_size=3)
    with pytest.raises(ValueError, match="tokens"):
        ma.check_model_leaks(same, tokens + 7, ma.causal(), vocab_size=3)
    with pytest.raises(ValueError, match="model output"):
        ma.check_model_leaks(lambda ids: ids.sum(axis=1), tokens, ma.causal(), vocab_size=3)
    with pytest.raises(ValueError, match="model output"):
        ma.check_model_leaks(lambda ids: None, tokens, ma.causal(), vocab_size=3)

    def broken(ids):
        raise RuntimeError("model failed")
    with pytest.raises(RuntimeError, match="model failed"):
        ma.check_model_leaks(broken, tokens, ma.causal(), vocab_size=3)
    # Position-wise: nothing leaks, and a model whose output ignores the
    # tokens is checked just the same.
    assert not ma.check_model_leaks(same, tokens, ma.causal(), vocab_size=3).leaks_found
