"""Seq2SeqTransformer training against PyTorch autograd: the same model built
from torch.nn (nn.Embedding scaled by sqrt(d_model) plus sinusoidal positions,
nn.Transformer with batch_first, nn.Linear), the same weights, batch and masks
(source key padding in the encoder and the cross-attention, the target's
look-ahead mask), dropout 0.

- forward_backward: logits and every parameter's gradient, post-norm and
  pre-norm, within atol 1e-4 + rtol 1e-4 (measured: logits 7.5e-7, gradients
  5.7e-6 where the largest gradient is 39).
- Seq2SeqTrainer.step against torch's loop (F.cross_entropy with
  ignore_index -100, clip_grad_norm_(1.0), AdamW(0.9, 0.98, 1e-9) under
  LambdaLR(Noam)): every step's loss and the parameters after 5 steps.
- look_ahead=False lets a position see the next target token.
- CopyTask's batches; errors are ValueError naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import maskattn as ma

torch.set_num_threads(2)
V, D, H, FF = 9, 16, 2, 24


class TorchSeq2Seq(nn.Module):
    def __init__(self, norm_first: bool, layers: int = 2):
        super().__init__()
        self.src_embed = nn.Embedding(V, D)
        self.tgt_embed = nn.Embedding(V, D)
        self.transformer = nn.Transformer(D, H, layers, layers, FF, dropout=0.0,
                                          batch_first=True, norm_first=norm_first)
        self.generator = nn.Linear(D, V)
        pos = torch.arange(32, dtype=torch.float64)[:, None]
        div = torch.exp(torch.arange(0, D, 2, dtype=torch.float64) * (-math.log(10000.0) / D))
        pe = torch.zeros(32, D, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe.float(), persistent=False)

    def embed(self, table, ids):
        return table(ids) * math.sqrt(D) + self.pe[: ids.shape[1]]

    def forward(self, src, lengths, tgt):
        pad = torch.arange(src.shape[1])[None] >= torch.as_tensor(lengths)[:, None]
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        out = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt),
                               tgt_mask=causal, src_key_padding_mask=pad,
                               memory_key_padding_mask=pad)
        return self.generator(out)


def pair(norm_first: bool, layers: int = 2):
    m = ma.Seq2SeqTransformer(V, V, d_model=D, nhead=H, num_encoder_layers=layers,
                              num_decoder_layers=layers, dim_feedforward=FF, dropout=0.0,
                              norm_first=norm_first, max_len=32)
    rng = np.random.default_rng(0)
    state = {k: rng.normal(0.0, 0.2, np.shape(v)).astype(np.float32)
             + (1.0 if ("norm" in k and k.endswith("weight")) else 0.0)
             for k, v in m.state_dict().items()}
    state = {k: v.astype(np.float32) for k, v in state.items()}
    m.load_state_dict(state)
    t = TorchSeq2Seq(norm_first, layers)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return m, t


def batch():
    task = ma.CopyTask(vocab=V, min_len=2, max_len=7)
    return task.batch(seed=3, index=0, n=6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_forward_backward_matches_torch_autograd(norm_first):
    m, t = pair(norm_first)
    b = batch()
    w = np.random.default_rng(1).normal(size=b["tgt_in"].shape + (V,)).astype(np.float32)
    logits, grads = m.forward_backward(b["src"], b["src_lengths"], b["tgt_in"], w)
    tl = t(torch.from_numpy(b["src"]), b["src_lengths"], torch.from_numpy(b["tgt_in"]))
    (tl * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(logits, tl.detach().numpy(), atol=1e-4, rtol=1e-4)
    names = [n for n, _ in t.named_parameters()]
    assert sorted(grads) == sorted(names)
    for name, p in t.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), atol=1e-4, rtol=1e-4,
                                   err_msg=name)


def test_trainer_steps_match_torch():
    m, t = pair(True)
    trainer = ma.Seq2SeqTrainer(m, warmup=10, factor=2.0, clip_norm=1.0)
    opt = torch.optim.AdamW(t.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 2.0 * D ** -0.5 * min(max(s, 1) ** -0.5, max(s, 1) * 10 ** -1.5))
    task = ma.CopyTask(vocab=V, min_len=2, max_len=7)
    lrs = []
    for i in range(5):
        b = task.batch(seed=4, index=i, n=8)
        got = trainer.step(b["src"], b["src_lengths"], b["tgt_in"], b["tgt_out"])
        logits = t(torch.from_numpy(b["src"]), b["src_lengths"], torch.from_numpy(b["tgt_in"]))
        loss = F.cross_entropy(logits.reshape(-1, V), torch.from_numpy(b["tgt_out"]).reshape(-1),
                               ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(t.parameters(), 1.0)
        assert got["lr"] == pytest.approx(sched.get_last_lr()[0], rel=1e-12)
        opt.step()
        sched.step()
        assert got["loss"] == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
        assert got["grad_norm"] == pytest.approx(norm.item(), rel=1e-4)
        assert got["tokens"] == int((b["tgt_out"] != -100).sum())
        lrs.append(got["lr"])
    assert trainer.steps == 5
    state = m.state_dict()
    for name, p in t.named_parameters():
        ours, theirs = np.array(state[name]), p.detach().numpy().copy()
        if name.endswith("in_proj_bias"):
            # The key bias adds q . b_k to every score of a row: softmax ignores
            # it, so its true gradient is 0 and both sides hold rounding noise
            # (~1e-9), which Adam's m / sqrt(v) turns into steps of +-lr. Bounded
            # by the sum of the rates; the rest must agree closely.
            key = slice(D, 2 * D)
            assert np.abs(ours[key] - theirs[key]).max() <= sum(lrs) * 1.001
            ours[key] = theirs[key] = 0.0
        np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=1e-4, err_msg=name)


def test_without_look_ahead_a_position_sees_the_next_token():
    for look_ahead in (True, False):
        m = ma.Seq2SeqTransformer(V, V, d_model=D, nhead=H, num_encoder_layers=1,
                                  num_decoder_layers=1, dim_feedforward=FF, dropout=0.0,
                                  max_len=32, look_ahead=look_ahead)
        b = batch()
        tgt = b["tgt_in"].copy()
        a = m(b["src"], b["src_lengths"], tgt)
        tgt[:, 3] = (tgt[:, 3] + 1) % V
        c = m(b["src"], b["src_lengths"], tgt)
        change = np.abs(a[:, :3] - c[:, :3]).max()
        assert (change == 0.0) if look_ahead else (change > 1e-4)


def test_copy_task_batches():
    task = ma.CopyTask(vocab=13, min_len=4, max_len=12)
    b = task.batch(seed=1, index=0, n=5)
    assert b["src"].shape == (5, 12) and b["tgt_in"].shape == (5, 13)
    for i, n in enumerate(b["src_lengths"]):
        assert (b["tgt_in"][i, 1:n + 1] == b["src"][i, :n]).all()
        assert b["tgt_out"][i, n] == 2 and (b["tgt_out"][i, n + 1:] == -100).all()
    decoded = np.concatenate([np.ones((5, 1), np.int64), b["tgt_out"].clip(0)], axis=1)
    assert task.count_exact(b["src"], b["src_lengths"], decoded) == 5
    h = task.batch(seed=1, index=0, n=5, heldout=True)
    assert not np.array_equal(h["src"], b["src"])


def test_errors_name_the_argument():
    m = ma.Seq2SeqTransformer(V, V, d_model=D, nhead=H, num_encoder_layers=1,
                              num_decoder_layers=1, dim_feedforward=FF, max_len=32)
    b = batch()
    with pytest.raises(ValueError, match="src_lengths"):
        m(b["src"], b["src_lengths"][:-1], b["tgt_in"])
    with pytest.raises(ValueError, match="src_lengths"):
        m(b["src"], np.full(6, 99), b["tgt_in"])
    with pytest.raises(ValueError, match="tgt"):
        m(b["src"], b["src_lengths"], b["tgt_in"][:-1])
    with pytest.raises(ValueError, match="grad_logits"):
        m.forward_backward(b["src"], b["src_lengths"], b["tgt_in"], np.zeros((1, 2, V), np.float32))
    with pytest.raises(ValueError, match="vocab"):
        ma.CopyTask(vocab=3)
    trainer = ma.Seq2SeqTrainer(m)
    with pytest.raises(ValueError, match="tgt_out"):
        trainer.step(b["src"], b["src_lengths"], b["tgt_in"], b["tgt_out"][:, :-1])


def test_greedy_decode_takes_the_argmax_of_teacher_forcing():
    m, _ = pair(True)
    m.eval()
    b = batch()
    out = m.greedy_decode(b["src"], b["src_lengths"], 1, 6)
    assert out.shape == (6, 6) and (out[:, 0] == 1).all()
    logits = m(b["src"], b["src_lengths"], out[:, :-1])
    np.testing.assert_array_equal(logits.argmax(-1), out[:, 1:])
    stopped = m.greedy_decode(b["src"], b["src_lengths"], 1, 6, stop_symbol=2)
    assert stopped.shape[0] == 6
