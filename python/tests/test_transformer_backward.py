"""Transformer layers' and stacks' backward passes (``forward_backward``)
against torch autograd of torch.nn.TransformerEncoderLayer /
TransformerDecoderLayer / TransformerEncoder / TransformerDecoder /
Transformer.

Weights travel as in test_nn_backward: torch module after
``torch.manual_seed``, every parameter random (matrices N(0, 1/fan_in),
vectors N(0, 1)), its state_dict loaded (strict) into the maskattn layer built
with the same arguments; same unit-variance inputs and grad_output, same
masks, dropout off (eval mode: the dropout draws of the two libraries differ;
the C++ finite-difference checks cover dropout). torch's gradients are those
of ``(output * grad_output).sum()``, with grad enabled (no fused fast path).

Tolerance (fp32 on both sides, a layer of attention, feed-forward and
LayerNorm on unit-variance data): every gradient within GRAD_ATOL +
GRAD_RTOL * |torch's value|, outputs within OUT_ATOL; the worst differences
are printed (``pytest -s``): 1.3e-5 at most (self_attn.in_proj_weight).

What it proves: the gradients of the input(s) (src; tgt and memory; src and
tgt) and of every parameter (same state_dict names on both sides) equal
torch's for post-norm and norm_first, relu and gelu, batch_first, bias=False,
with a look-ahead mask (bool, float, or is_causal), key padding masks and a
memory mask; for the layers, the stacks of two layers with a final norm (the
memory's gradient summed over the decoder's layers) and torch.nn.Transformer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import randn
from test_nn_backward import load_from, randomize_

import maskattn as ma

GRAD_ATOL = 5e-5
GRAD_RTOL = 1e-4
OUT_ATOL = 2e-5

D_MODEL, NHEAD, FF = 8, 2, 16

pytestmark = [
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors"),
]


def torch_grads(t_module, inputs: list[np.ndarray], grad_output: np.ndarray, **kwargs):
    """(output, [grad of each input], {name: grad}) of sum(output * grad_output)."""
    t_module.zero_grad()
    ts = [torch.from_numpy(x).requires_grad_(True) for x in inputs]
    kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = t_module(*ts, **kwargs)
    (out * torch.from_numpy(grad_output)).sum().backward()
    return out.detach(), [t.grad for t in ts], {n: p.grad for n, p in t_module.named_parameters()}


def assert_grad(actual, expected: torch.Tensor, what: str) -> None:
    expected = expected.numpy()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=what)
    print(f"  {what}: worst |difference| {float(np.max(np.abs(actual - expected))):.2e}")


def check(out, input_grads, grads, t_out, t_input_grads, t_grads) -> None:
    np.testing.assert_allclose(out, t_out.numpy(), rtol=0, atol=OUT_ATOL)
    for i, (g, t) in enumerate(zip(input_grads, t_input_grads, strict=True)):
        assert_grad(g, t, f"input {i}")
    assert sorted(grads) == sorted(t_grads)
    for name, g in grads.items():
        assert_grad(g, t_grads[name], name)


def layer_kwargs(norm_first: bool, activation: str, batch_first: bool, bias: bool) -> dict:
    return dict(
        dim_feedforward=FF,
        dropout=0.1,
        activation=activation,
        batch_first=batch_first,
        norm_first=norm_first,
        bias=bias,
    )


CONFIGS = [
    # (norm_first, activation, batch_first, bias)
    (False, "relu", False, True),
    (True, "relu", False, True),
    (False, "gelu", True, True),
    (True, "gelu", False, False),
]
CONFIG_IDS = ["post-relu", "pre-relu", "post-gelu-batch-first", "pre-gelu-no-bias"]


def seq(rng, batch_first: bool, length: int, n: int) -> np.ndarray:
    return randn(rng, n, length, D_MODEL) if batch_first else randn(rng, length, n, D_MODEL)


def causal_bool(length: int) -> np.ndarray:
    return np.triu(np.ones((length, length), dtype=bool), 1)  # True = masked (torch)


def padding(lengths: list[int], total: int) -> np.ndarray:
    return np.arange(total)[None, :] >= np.array(lengths)[:, None]  # True = padding


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("masks", ["none", "causal+padding", "float-causal", "is_causal"])
def test_encoder_layer(config, masks):
    norm_first, activation, batch_first, bias = config
    kw = layer_kwargs(norm_first, activation, batch_first, bias)
    t = randomize_(torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, **kw), 10)
    m = load_from(ma.TransformerEncoderLayer(D_MODEL, NHEAD, **kw), t)
    rng = np.random.default_rng(11)
    length, n = 5, 3
    src = seq(rng, batch_first, length, n)
    g = seq(rng, batch_first, length, n)
    call: dict = {}
    if masks == "causal+padding":
        call = dict(src_mask=causal_bool(length), src_key_padding_mask=padding([5, 3, 4], length))
    elif masks == "float-causal":
        call = dict(src_mask=np.where(causal_bool(length), -np.inf, 0).astype(np.float32))
    elif masks == "is_causal":
        call = dict(src_mask=causal_bool(length), is_causal=True)
    out, d_src, grads = m.forward_backward(src, g, **call)
    check(out, [d_src], grads, *torch_grads(t, [src], g, **call))


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("masks", ["none", "causal+padding+memory"])
def test_decoder_layer(config, masks):
    norm_first, activation, batch_first, bias = config
    kw = layer_kwargs(norm_first, activation, batch_first, bias)
    t = randomize_(torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, **kw), 20)
    m = load_from(ma.TransformerDecoderLayer(D_MODEL, NHEAD, **kw), t)
    rng = np.random.default_rng(21)
    tl, sl, n = 4, 6, 2
    tgt = seq(rng, batch_first, tl, n)
    memory = seq(rng, batch_first, sl, n)
    g = seq(rng, batch_first, tl, n)
    call: dict = {}
    if masks != "none":
        memory_mask = np.zeros((tl, sl), dtype=bool)
        memory_mask[0, 4:] = True  # one query row sees fewer memory positions
        call = dict(
            tgt_mask=causal_bool(tl),
            tgt_key_padding_mask=padding([4, 3], tl),
            memory_mask=memory_mask,
            memory_key_padding_mask=padding([6, 5], sl),
            tgt_is_causal=True,
        )
    out, (d_tgt, d_memory), grads = m.forward_backward(tgt, memory, g, **call)
    check(out, [d_tgt, d_memory], grads, *torch_grads(t, [tgt, memory], g, **call))


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "norm-first"])
def test_encoder_and_decoder_stacks(norm_first):
    kw = layer_kwargs(norm_first, "relu", False, True)
    t_enc = randomize_(
        torch.nn.TransformerEncoder(
            torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, **kw),
            2,
            norm=torch.nn.LayerNorm(D_MODEL),
            enable_nested_tensor=False,
        ),
        30,
    )
    m_enc = load_from(
        ma.TransformerEncoder(
            ma.TransformerEncoderLayer(D_MODEL, NHEAD, **kw), 2, norm=ma.LayerNorm(D_MODEL)
        ),
        t_enc,
    )
    rng = np.random.default_rng(31)
    src, g = randn(rng, 5, 2, D_MODEL), randn(rng, 5, 2, D_MODEL)
    call = dict(mask=causal_bool(5), src_key_padding_mask=padding([5, 3], 5))
    out, d_src, grads = m_enc.forward_backward(src, g, **call)
    check(out, [d_src], grads, *torch_grads(t_enc, [src], g, **call))

    t_dec = randomize_(
        torch.nn.TransformerDecoder(
            torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, **kw),
            2,
            norm=torch.nn.LayerNorm(D_MODEL),
        ),
        32,
    )
    m_dec = load_from(
        ma.TransformerDecoder(
            ma.TransformerDecoderLayer(D_MODEL, NHEAD, **kw), 2, norm=ma.LayerNorm(D_MODEL)
        ),
        t_dec,
    )
    tgt, memory, g = randn(rng, 4, 2, D_MODEL), randn(rng, 5, 2, D_MODEL), randn(rng, 4, 2, D_MODEL)
    call = dict(tgt_mask=causal_bool(4), memory_key_padding_mask=padding([5, 2], 5))
    out, (d_tgt, d_memory), grads = m_dec.forward_backward(tgt, memory, g, **call)
    check(out, [d_tgt, d_memory], grads, *torch_grads(t_dec, [tgt, memory], g, **call))


@pytest.mark.parametrize("config", CONFIGS[:2] + CONFIGS[2:3], ids=CONFIG_IDS[:3])
def test_transformer(config):
    norm_first, activation, batch_first, bias = config
    kw = layer_kwargs(norm_first, activation, batch_first, bias)
    shape = dict(d_model=D_MODEL, nhead=NHEAD, num_encoder_layers=1, num_decoder_layers=2)
    t = torch.nn.Transformer(**shape, **kw)
    t.encoder.use_nested_tensor = False  # padded positions hold real values, as ours
    t = randomize_(t, 40)
    m = load_from(ma.Transformer(**shape, **kw), t)
    rng = np.random.default_rng(41)
    src = seq(rng, batch_first, 5, 2)
    tgt = seq(rng, batch_first, 4, 2)
    g = seq(rng, batch_first, 4, 2)
    call = dict(
        tgt_mask=causal_bool(4),
        src_key_padding_mask=padding([5, 4], 5),
        memory_key_padding_mask=padding([5, 4], 5),
        tgt_is_causal=True,
    )
    out, (d_src, d_tgt), grads = m.forward_backward(src, tgt, g, **call)
    check(out, [d_src, d_tgt], grads, *torch_grads(t, [src, tgt], g, **call))


def test_bad_grad_output_names_it():
    m = ma.TransformerEncoderLayer(D_MODEL, NHEAD, dim_feedforward=FF)
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="grad_output"):
        m.forward_backward(randn(rng, 3, 2, D_MODEL), randn(rng, 3, 1, D_MODEL))
    d = ma.TransformerDecoderLayer(D_MODEL, NHEAD, dim_feedforward=FF)
    with pytest.raises(ValueError, match="grad_output"):
        d.forward_backward(
            randn(rng, 3, 2, D_MODEL), randn(rng, 4, 2, D_MODEL), randn(rng, 4, 2, D_MODEL)
        )
