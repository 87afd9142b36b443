"""The modules' backward passes (``forward_backward``) against torch autograd.

Each test builds the torch module after ``torch.manual_seed``, gives every
parameter random values (matrices N(0, 1/fan_in), vectors N(0, 1): torch's
zero biases and unit LayerNorm weights would hide a missing term), loads its
``state_dict`` into the maskattn module built with the same arguments, and
runs both on the same unit-variance input and grad_output, dropout off (eval
mode). torch's gradients are those of ``(output * grad_output).sum()``.

Tolerance (fp32 on both sides; sums of at most ~30 products of unit-variance
numbers): every gradient within GRAD_ATOL + GRAD_RTOL * |torch's value|, the
outputs within OUT_ATOL. The worst absolute differences measured are printed
(``pytest -s``) and were below 2e-6.

What it proves: Linear (bias on / off, any leading shape), LayerNorm (affine,
no affine, no bias), Embedding (padding_idx's row gets no gradient, sqrt(d)
scale, repeated ids sum), the tied output projection (``unembed``: its share
plus the lookup's equals torch's gradient of an lm_head whose weight is the
embedding's), FeedForward (relu, gelu) equal torch's gradients; Dropout and
PositionalEncoding in training mode give grad_input = grad_output masked and
scaled as the output was; grads start from zero on every call; a grad_output
of the wrong shape is a ValueError naming it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import randn

import maskattn as ma

GRAD_ATOL = 2e-5
GRAD_RTOL = 1e-5
OUT_ATOL = 1e-5


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
            if p.dim() == 2:
                p.div_(math.sqrt(p.shape[1]))
    return module.eval()


def load_from(ma_module, t_module: torch.nn.Module):
    result = ma_module.load_state_dict({k: v.detach() for k, v in t_module.state_dict().items()})
    assert tuple(result) == ([], [])
    return ma_module.eval()


def torch_forward_backward(t_module, x: torch.Tensor, grad_output: np.ndarray, forward=None):
    """(output, grad of x or None, {name: grad}) of sum(output * grad_output)."""
    t_module.zero_grad()
    if x.is_floating_point():
        x = x.clone().requires_grad_(True)
    out = (forward or t_module)(x)
    (out * torch.from_numpy(grad_output)).sum().backward()
    grads = {name: p.grad.clone() for name, p in t_module.named_parameters()}
    return out.detach(), (x.grad if x.is_floating_point() else None), grads


def assert_grad(actual, expected: torch.Tensor, what: str) -> float:
    expected = expected.numpy()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=what)
    worst = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    print(f"  {what}: worst |difference| {worst:.2e}")
    return worst


def compare(ma_module, t_module, x: np.ndarray, grad_output: np.ndarray, forward=None) -> None:
    """ma's forward_backward against torch autograd: output, grad_input, every
    parameter's gradient (the same names on both sides)."""
    out, dx, grads = ma_module.forward_backward(x, grad_output)
    t_out, t_dx, t_grads = torch_forward_backward(
        t_module, torch.from_numpy(x), grad_output, forward
    )
    np.testing.assert_allclose(out, t_out.numpy(), rtol=0, atol=OUT_ATOL)
    if t_dx is None:
        assert dx is None
    else:
        assert_grad(dx, t_dx, "grad_input")
    assert sorted(grads) == sorted(t_grads)
    for name, g in grads.items():
        assert_grad(g, t_grads[name], name)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), ()], ids=["2d", "3d", "one-row"])
def test_linear(bias, shape):
    rng = np.random.default_rng(1)
    t = randomize_(torch.nn.Linear(7, 5, bias=bias), 1)
    m = load_from(ma.Linear(7, 5, bias=bias), t)
    compare(m, t, randn(rng, *shape, 7), randn(rng, *shape, 5))


@pytest.mark.parametrize(
    "affine, bias", [(True, True), (False, True), (True, False)], ids=["affine", "plain", "no-bias"]
)
def test_layer_norm(affine, bias):
    rng = np.random.default_rng(2)
    t = randomize_(torch.nn.LayerNorm(9, elementwise_affine=affine, bias=bias), 2)
    m = load_from(ma.LayerNorm(9, elementwise_affine=affine, bias=bias), t)
    x = randn(rng, 2, 5, 9) + 3.0  # a mean to remove
    compare(m, t, x, randn(rng, 2, 5, 9))


@pytest.mark.parametrize("scale", [False, True], ids=["plain", "sqrt-d"])
def test_embedding_padding_row_gets_no_gradient(scale):
    rng = np.random.default_rng(3)
    vocab, d, pad = 11, 6, 2
    t = randomize_(torch.nn.Embedding(vocab, d, padding_idx=pad), 3)
    m = load_from(ma.Embedding(vocab, d, padding_idx=pad, scale_by_sqrt_dim=scale), t)
    ids = np.array([[1, 2, 4, 4], [2, 0, 4, 10]], dtype=np.int64)  # padding and repeats
    factor = math.sqrt(d) if scale else 1.0
    compare(m, t, ids, randn(rng, 2, 4, d), forward=lambda i: t(i) * factor)
    _, _, grads = m.forward_backward(ids, randn(rng, 2, 4, d))
    assert not grads["weight"][pad].any()


def test_tied_output_projection_sums_both_uses():
    """logits = lm_head(embed(ids) * sqrt(d)) with lm_head.weight IS the
    embedding's weight, as Hugging Face ties them: torch's one gradient
    equals the lookup's share plus unembed's."""
    rng = np.random.default_rng(4)
    vocab, d, pad = 9, 4, 0
    emb = randomize_(torch.nn.Embedding(vocab, d, padding_idx=pad), 4)
    lm_head = torch.nn.Linear(d, vocab, bias=False)
    lm_head.weight = emb.weight
    ids = np.array([[3, 0, 5], [8, 3, 1]], dtype=np.int64)
    g_logits = randn(rng, 2, 3, vocab)

    logits_t = lm_head(emb(torch.from_numpy(ids)) * math.sqrt(d))
    (logits_t * torch.from_numpy(g_logits)).sum().backward()

    m = load_from(ma.Embedding(vocab, d, padding_idx=pad, scale_by_sqrt_dim=True), emb)
    e = m(ids)
    logits, d_e, g_unembed = m.unembed_forward_backward(e, g_logits)
    _, _, g_lookup = m.forward_backward(ids, d_e)
    np.testing.assert_allclose(logits, logits_t.detach().numpy(), rtol=0, atol=OUT_ATOL)
    np.testing.assert_allclose(m.unembed(e), logits, rtol=0, atol=0)
    assert sorted(g_unembed) == ["weight"]
    assert_grad(g_unembed["weight"] + g_lookup["weight"], emb.weight.grad, "tied weight")
    # The padding row: unembed's share only (its logit column was used).
    assert g_unembed["weight"][pad].any()
    assert not g_lookup["weight"][pad].any()


class TorchFeedForward(torch.nn.Module):
    """torch.nn.TransformerEncoderLayer's feed-forward block on its own."""

    def __init__(self, d_model: int, hidden: int, activation: str, bias: bool):
        super().__init__()
        self.linear1 = torch.nn.Linear(d_model, hidden, bias=bias)
        self.dropout = torch.nn.Dropout(0.1)
        self.linear2 = torch.nn.Linear(hidden, d_model, bias=bias)
        self.activation = torch.nn.ReLU() if activation == "relu" else torch.nn.GELU()

    def forward(self, x):
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
def test_feed_forward(activation, bias):
    rng = np.random.default_rng(5)
    t = randomize_(TorchFeedForward(6, 16, activation, bias), 5)
    m = load_from(ma.FeedForward(6, 16, activation=activation, dropout=0.1, bias=bias), t)
    assert list(m.state_dict()) == list(t.state_dict())
    compare(m, t, randn(rng, 3, 4, 6), randn(rng, 3, 4, 6))


def test_grads_start_from_zero_on_every_call():
    rng = np.random.default_rng(6)
    m = ma.Linear(4, 3)
    x, g = randn(rng, 5, 4), randn(rng, 5, 3)
    first = m.forward_backward(x, g)[2]
    second = m.forward_backward(x, g)[2]
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_dropout_backward_replays_the_forwards_mask():
    rng = np.random.default_rng(7)
    d = ma.Dropout(0.4).train()
    d.seed(3)
    x = np.abs(randn(rng, 6, 10)) + 0.5  # never 0: a kept element shows
    g = randn(rng, 6, 10)
    out, dx, grads = d.forward_backward(x, g)
    assert grads == {}
    kept = out != 0
    assert 0 < kept.sum() < kept.size
    scale = np.float32(1 / 0.6)
    np.testing.assert_array_equal(out, np.where(kept, x * scale, 0))
    np.testing.assert_array_equal(dx, np.where(kept, g * scale, 0))
    d.eval()
    out, dx, _ = d.forward_backward(x, g)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(dx, g)


@pytest.mark.parametrize("batch_first", [False, True])
def test_positional_encoding_backward_is_its_dropouts(batch_first):
    rng = np.random.default_rng(8)
    pe = ma.PositionalEncoding(8, dropout=0.5, max_len=20).train()
    pe.seed(4)
    x = randn(rng, 3, 2, 8)
    g = randn(rng, 3, 2, 8)
    out, dx, grads = pe.forward_backward(x, g, batch_first=batch_first, offset=2)
    assert grads == {}
    clean = pe.eval()(x, batch_first=batch_first, offset=2)  # x + PE, no dropout
    kept = out != 0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_allclose(out, np.where(kept, clean * 2, 0), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(dx, np.where(kept, g * np.float32(2), 0))
    # Unbatched (L, d_model) in, unbatched out.
    out1, dx1, _ = pe.forward_backward(x[:, 0], g[:, 0], batch_first=batch_first)
    assert out1.shape == dx1.shape == (3, 8)
    np.testing.assert_array_equal(dx1, g[:, 0])


def test_wrong_grad_output_is_a_value_error_naming_it():
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match="grad_output"):
        ma.Linear(4, 3).forward_backward(randn(rng, 2, 4), randn(rng, 2, 4))
    with pytest.raises(ValueError, match="grad_output"):
        ma.Embedding(5, 3).forward_backward(np.zeros((2,), np.int64), randn(rng, 2, 4))
    with pytest.raises(ValueError, match="grad_output"):
        ma.PositionalEncoding(4).forward_backward(randn(rng, 3, 1, 4), randn(rng, 3, 2, 4))
