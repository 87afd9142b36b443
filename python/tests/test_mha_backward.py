"""MultiheadAttention.forward_backward against torch.nn.MultiheadAttention autograd.

Each case builds torch's module with random parameters (test_nn_backward's
``randomize_``: matrices N(0, 1/fan_in), vectors N(0, 1)), loads its
``state_dict`` into ma.MultiheadAttention built with the same arguments
(dropout 0, training mode on both sides), and runs both on the same
unit-variance query, key, value and grad_output. torch's gradients are those
of ``(out * grad_output).sum()`` with query, key and value three separate
leaves, so self-attention (one x passed three times) compares the three parts
and their sum.

torch is run with need_weights=True: that is its path that pads attn_mask /
key_padding_mask for the keys of add_bias_kv / add_zero_attn and leaves them
visible under is_causal, as maskattn does (test_nn_parity.py explains torch's
other path). maskattn gets is_causal=True alone where torch needs the causal
attn_mask it hints at. No row is left without keys (torch gives NaN there;
the C++ finite-difference tests cover empty rows, head_mask, GQA and dropout).

Tolerance (fp32 both sides; sums of ~20 products of unit-variance numbers,
then softmax): every gradient within GRAD_ATOL + GRAD_RTOL * |torch's|, the
output within OUT_ATOL. The worst differences are printed (``pytest -s``);
measured below 1e-5 over every case.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from conftest import randn
from test_nn_backward import load_from, randomize_
from test_nn_parity import look_ahead_bool, mha_masks

import maskattn as ma

GRAD_ATOL = 5e-5
GRAD_RTOL = 1e-4
OUT_ATOL = 2e-5

E, H = 16, 4
N = 2
L_SELF = 5
L_CROSS, S_CROSS = 4, 6
KDIM, VDIM = 12, 20

pytestmark = [
    pytest.mark.filterwarnings("ignore:Support for mismatched"),
    pytest.mark.filterwarnings("ignore:Converting mask without torch.bool dtype"),
]

CONFIGS = {
    "default": {},
    "batch_first": {"batch_first": True},
    "no_bias": {"bias": False},
    "add_bias_kv": {"add_bias_kv": True},
    "add_zero_attn": {"add_zero_attn": True},
    "kdim_vdim+bias_kv+zero_attn+batch_first": {
        "kdim": KDIM, "vdim": VDIM, "add_bias_kv": True, "add_zero_attn": True,
        "batch_first": True,
    },
    "kdim_vdim+no_bias": {"kdim": KDIM, "vdim": VDIM, "bias": False},
}

# name: (attn_mask kind, key_padding_mask kind, is_causal)
CALLS = {
    "plain": (None, None, False),
    "attn_bool_2d": ("bool2d", None, False),
    "attn_float_2d": ("float2d", None, False),
    "attn_bool_3d": ("bool3d", None, False),
    "attn_float_3d": ("float3d", None, False),
    "kpm_bool": (None, "bool", False),
    "kpm_float": (None, "float", False),
    "attn_bool_2d+kpm_bool": ("bool2d", "bool", False),
    "attn_float_3d+kpm_float": ("float3d", "float", False),
    "causal": (None, None, True),
    "causal+kpm_bool": (None, "bool", True),
}

MODES = ["self", "cross", "unbatched"]


def cases():
    for cfg_name, cfg in CONFIGS.items():
        for call_name in CALLS:
            for mode in MODES:
                if mode == "self" and "kdim" in cfg:
                    continue
                yield pytest.param(cfg_name, call_name, mode, id=f"{cfg_name}-{call_name}-{mode}")


def inputs(rng, cfg: dict, mode: str):
    """(query, key, value) in the module's layout (self: one array three
    times; unbatched: 2-D), and (L, S)."""
    kdim, vdim = cfg.get("kdim", E), cfg.get("vdim", E)
    bf = cfg.get("batch_first", False)
    if mode == "self":
        x = randn(rng, N, L_SELF, E) if bf else randn(rng, L_SELF, N, E)
        return (x, x, x), L_SELF, L_SELF
    if mode == "unbatched":
        return (randn(rng, L_CROSS, E), randn(rng, S_CROSS, kdim),
                randn(rng, S_CROSS, vdim)), L_CROSS, S_CROSS

    def seq(length, dim):
        return randn(rng, N, length, dim) if bf else randn(rng, length, N, dim)

    return (seq(L_CROSS, E), seq(S_CROSS, kdim), seq(S_CROSS, vdim)), L_CROSS, S_CROSS


def as_torch(a):
    return None if a is None else torch.from_numpy(a)


def check(actual: np.ndarray, expected: torch.Tensor, what: str) -> float:
    expected = expected.detach().numpy()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=what)
    return float(np.max(np.abs(actual - expected))) if actual.size else 0.0


@pytest.mark.parametrize(("cfg_name", "call_name", "mode"), list(cases()))
def test_forward_backward_equals_torch_autograd(cfg_name, call_name, mode):
    torch.set_num_threads(2)
    cfg = CONFIGS[cfg_name]
    attn_kind, kpm_kind, is_causal = CALLS[call_name]
    rng = np.random.default_rng(zlib.crc32(f"{cfg_name}/{call_name}/{mode}".encode()))
    t = randomize_(torch.nn.MultiheadAttention(E, H, dropout=0.0, **cfg), 7).train()
    m = load_from(ma.MultiheadAttention(E, H, dropout=0.0, **cfg), t).train()
    (q, k, v), l, s = inputs(rng, cfg, mode)
    attn_mask, kpm = mha_masks(rng, attn_kind, kpm_kind, l, s, batched=q.ndim == 3)
    grad_output = randn(rng, *q.shape)

    out, (dq, dk, dv), grads = m.forward_backward(
        q, k, v, grad_output, key_padding_mask=kpm, attn_mask=attn_mask, is_causal=is_causal
    )

    t.zero_grad()
    tq, tk, tv = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (q, k, v))
    t_attn = attn_mask
    if is_causal:
        t_attn = look_ahead_bool(l, s)
    t_out, _ = t(tq, tk, tv, key_padding_mask=as_torch(kpm), need_weights=True,
                 attn_mask=as_torch(t_attn), is_causal=is_causal)
    (t_out * torch.from_numpy(grad_output)).sum().backward()

    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=0, atol=OUT_ATOL)
    worst = {"out": float(np.max(np.abs(out - t_out.detach().numpy())))}
    worst["grad_query"] = check(dq, tq.grad, "grad_query")
    worst["grad_key"] = check(dk, tk.grad, "grad_key")
    worst["grad_value"] = check(dv, tv.grad, "grad_value")
    if mode == "self":
        worst["grad_x"] = check(dq + dk + dv, tq.grad + tk.grad + tv.grad, "grad_x (sum)")
    t_grads = dict(t.named_parameters())
    assert sorted(grads) == sorted(t_grads)
    for name, g in grads.items():
        worst[name] = check(g, t_grads[name].grad, name)
    print(f"  worst |difference|: {max(worst.values()):.2e} ({max(worst, key=worst.get)})")


def test_grads_start_from_zero_and_dropout_replays():
    """Two calls give the same gradients (nothing accumulates across calls);
    with dropout in training mode a seed replays the same output and
    gradients, another seed draws another pattern."""
    rng = np.random.default_rng(11)
    m = ma.MultiheadAttention(E, H, dropout=0.4)
    x, g = randn(rng, L_SELF, N, E), randn(rng, L_SELF, N, E)
    runs = []
    for seed in (5, 5, 6):
        m.seed(seed)
        runs.append(m.forward_backward(x, x, x, g, is_causal=True))
    (out_a, d_a, g_a), (out_b, d_b, g_b), (out_c, _, _) = runs
    np.testing.assert_array_equal(out_a, out_b)
    for a, b in zip(d_a, d_b):
        np.testing.assert_array_equal(a, b)
    for name in g_a:
        np.testing.assert_array_equal(g_a[name], g_b[name])
    assert not np.array_equal(out_a, out_c)


def test_bad_grad_output_names_it():
    rng = np.random.default_rng(12)
    m = ma.MultiheadAttention(E, H)
    x = randn(rng, L_SELF, N, E)
    with pytest.raises(ValueError, match="grad_output"):
        m.forward_backward(x, x, x, randn(rng, L_SELF, N, E + 1))
    with pytest.raises(ValueError, match="head_mask"):
        m.forward_backward(x, x, x, x, head_mask=np.ones((H,), dtype=bool))
