"""maskattn's modules (``ma.Linear`` ... ``ma.Transformer``) against torch.nn.

How weights travel, as a user's would: the torch module is built after
``torch.manual_seed``, every parameter is given random values (matrices
N(0, 1/fan_in) so activations keep unit variance; vectors — biases, LayerNorm
weights, bias_k / bias_v — N(0, 1), since torch's zero biases and unit
LayerNorm weights would hide bugs), its ``state_dict()`` is written by the real
``safetensors.torch.save_file``, read back by ``ma.load_safetensors`` and
loaded (strict) into the maskattn module built with the same constructor
arguments. Both run in eval mode on unit-variance inputs, torch on its
reference (non-fused) path — grad enabled, see ``run_torch``: its fused
TransformerEncoderLayer kernel returns NaN for some mask combinations — and
the outputs agree within MODULE_ATOL, attention weights within conftest's
WEIGHTS_ATOL.

What it proves:
  * MultiheadAttention equals torch.nn.MultiheadAttention for kdim / vdim !=
    embed_dim, bias on / off, add_bias_kv, add_zero_attn, batch_first,
    need_weights, average_attn_weights, is_causal (with its causal attn_mask,
    as torch requires), bool / float attn_mask 2-D and 3-D (N*H, L, S), bool /
    float key_padding_mask, their combinations, unbatched inputs, self- and
    cross-attention. Query rows with no allowed key (torch: NaN) give weights
    0 and an output of out_proj(0) = out_proj.bias (attention output zero).
  * The extensions torch lacks — num_kv_heads (grouped-query attention),
    head_mask, a maskattn.Mask as attn_mask / key_padding_mask — equal a
    float64 oracle written here (projections with the module's own weights,
    conftest's ``attention_f64``, merge heads, out_proj).
  * TransformerEncoderLayer / DecoderLayer / Encoder (with and without final
    norm) / Decoder / Transformer equal torch's for src / tgt / memory key
    padding masks, look-ahead masks (``generate_square_subsequent_mask`` of
    both libraries, asserted equal), memory masks, norm_first, relu / gelu,
    batch_first, bias=False, unbatched inputs. torch's TransformerEncoder is
    built with ``enable_nested_tensor=False`` (and torch.nn.Transformer's
    encoder gets ``use_nested_tensor = False``) so that padded positions hold
    real values and every position is compared; one test runs torch's nested
    fast path (no_grad, which returns 0 at padded positions) and compares the
    real (unpadded) positions only.
  * state_dict names, shapes and order equal torch's for every module and
    configuration; state_dict() arrays share the module's memory;
    load_state_dict rejects missing / unexpected / wrongly shaped tensors with
    a ValueError naming the tensor (and changes nothing), and strict=False
    returns torch's (missing_keys, unexpected_keys).
  * Linear, LayerNorm, Embedding, Dropout, PositionalEncoding (the PyTorch
    tutorial's module) as torch; training-mode dropout is random per call,
    reproducible from seed(), and off after eval().
  * Bad input raises ValueError naming the argument the caller passed.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from conftest import WEIGHTS_ATOL, attention_f64, neg_inf_where_blocked, randn
from safetensors.torch import save_file

import maskattn as ma

# Module outputs (fp32 both sides, unit-variance activations) against torch.
MODULE_ATOL = 1e-4

# torch warns about its own deprecations / fast-path choices on some of the
# mask combinations tested here; those warnings are not what is checked.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Support for mismatched"),
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors"),
    pytest.mark.filterwarnings("ignore:Converting mask without torch.bool dtype"),
]


# ---------------------------------------------------------------------------
# Weights: torch module -> safetensors file -> maskattn module
# ---------------------------------------------------------------------------


def randomize_(module: torch.nn.Module) -> torch.nn.Module:
    """Every parameter random, from torch's global generator (seeded by the
    caller): matrices N(0, 1/fan_in), everything else N(0, 1)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
            if p.dim() == 2:
                p.div_(math.sqrt(p.shape[1]))
    return module


def torch_module(factory, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_(factory()).eval()


def load_weights(ma_module, t_module: torch.nn.Module, tmp_path, name: str = "weights"):
    """torch state_dict -> safetensors.torch.save_file -> ma.load_safetensors
    -> strict load_state_dict. Returns the maskattn module in eval mode."""
    path = tmp_path / f"{name}.safetensors"
    save_file(t_module.state_dict(), str(path))
    result = ma_module.load_state_dict(ma.load_safetensors(path))
    assert tuple(result) == ([], [])
    return ma_module.eval()


def run_torch(module, *args, **kwargs):
    """torch's reference computation: with grad enabled (parameters require
    grad) torch takes none of its fused inference fast paths, whose
    TransformerEncoderLayer kernel returns NaN for some mask combinations
    (e.g. a bool src_mask with a float src_key_padding_mask) in torch 2.15."""
    out = module(*args, **kwargs)
    if isinstance(out, tuple):
        return tuple(None if o is None else o.detach() for o in out)
    return out.detach()


def as_torch(kwargs: dict) -> dict:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


def assert_close(actual, expected, atol: float, what: str = "") -> None:
    actual = np.asarray(actual)
    expected = expected.numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=what)


def names_and_shapes(state: dict) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in state.items()]


def bool_mask(rng, *shape) -> np.ndarray:
    """bool, True = masked (torch's convention); key 0 never masked, so no
    row is left empty."""
    m = rng.random(shape) < 0.35
    m[..., 0] = False
    return m


def float_mask(rng, *shape) -> np.ndarray:
    """float32 additive: random finite values and -inf; key 0 finite."""
    m = (0.5 * rng.standard_normal(shape)).astype(np.float32)
    m[rng.random(shape) < 0.25] = -np.inf
    m[..., 0] = 0.5
    return m


def padding_from_lengths(lengths, size: int) -> np.ndarray:
    """(N, size) bool, True = padding (key j of batch b is padding iff j >= lengths[b])."""
    return np.arange(size)[None, :] >= np.asarray(lengths)[:, None]


def float_padding(rng, pad: np.ndarray) -> np.ndarray:
    """The float form of a padding mask: -inf at the padding, random finite values elsewhere."""
    return np.where(pad, -np.inf, 0.5 * rng.standard_normal(pad.shape)).astype(np.float32)


def look_ahead_bool(lq: int, lk: int) -> np.ndarray:
    """Top-left causal, torch's bool convention: True above the diagonal = masked."""
    return np.triu(np.ones((lq, lk), dtype=bool), 1)


# ---------------------------------------------------------------------------
# MultiheadAttention against torch.nn.MultiheadAttention
# ---------------------------------------------------------------------------

E, H = 16, 4  # head_dim 4
N = 2
L_SELF = 5
L_CROSS, S_CROSS = 4, 6
KDIM, VDIM = 12, 20

MHA_CONFIGS = {
    "default": {},
    "batch_first": {"batch_first": True},
    "no_bias": {"bias": False},
    "add_bias_kv": {"add_bias_kv": True},
    "add_zero_attn": {"add_zero_attn": True},
    "bias_kv+zero_attn+batch_first": {"add_bias_kv": True, "add_zero_attn": True, "batch_first": True},
    "kdim_vdim": {"kdim": KDIM, "vdim": VDIM},
    "kdim_vdim+no_bias+bias_kv+zero_attn+batch_first": {
        "kdim": KDIM, "vdim": VDIM, "bias": False, "add_bias_kv": True,
        "add_zero_attn": True, "batch_first": True,
    },
}

# name: (attn_mask kind, key_padding_mask kind, is_causal, need_weights, average_attn_weights)
MHA_CALLS = {
    "plain": (None, None, False, True, True),
    "no_weights": (None, None, False, False, True),
    "per_head_weights": (None, None, False, True, False),
    "attn_bool_2d": ("bool2d", None, False, True, True),
    "attn_float_2d": ("float2d", None, False, True, False),
    "attn_bool_3d": ("bool3d", None, False, False, True),
    "attn_float_3d": ("float3d", None, False, True, True),
    "kpm_bool": (None, "bool", False, True, True),
    "kpm_float": (None, "float", False, True, False),
    "attn_float_3d+kpm_bool": ("float3d", "bool", False, True, True),
    "attn_bool_2d+kpm_bool": ("bool2d", "bool", False, False, True),
    "attn_bool_3d+kpm_float": ("bool3d", "float", False, True, False),
    "causal": ("causal", None, True, True, True),
    "causal+kpm_bool": ("causal", "bool", True, False, True),
    "causal_no_weights": ("causal", None, True, False, True),
}

MHA_MODES = ["self", "cross", "unbatched"]


def mha_cases():
    for cfg_name, cfg in MHA_CONFIGS.items():
        separate = "kdim" in cfg  # self-attention needs kdim == vdim == embed_dim
        extra_keys = cfg.get("add_bias_kv", False) or cfg.get("add_zero_attn", False)
        for call_name in MHA_CALLS:
            # torch itself disagrees with its own attn_mask here: is_causal
            # without key_padding_mask and need_weights drops the attn_mask and
            # asks SDPA for is_causal over the keys *including* bias_k / the
            # zero key, which then masks them (with need_weights it pads the
            # attn_mask and they stay visible). Not a reference to compare to.
            if call_name == "causal_no_weights" and extra_keys:
                continue
            for mode in MHA_MODES:
                if mode == "self" and separate:
                    continue
                yield pytest.param(cfg_name, call_name, mode, id=f"{cfg_name}-{call_name}-{mode}")


def mha_inputs(rng, cfg: dict, mode: str):
    """(query, key, value) numpy arrays in the module's layout, with the
    (L, S) lengths; unbatched is 2-D (torch takes (L, E) whatever batch_first)."""
    kdim, vdim = cfg.get("kdim", E), cfg.get("vdim", E)
    bf = cfg.get("batch_first", False)
    if mode == "self":
        x = randn(rng, N, L_SELF, E) if bf else randn(rng, L_SELF, N, E)
        return (x, x, x), L_SELF, L_SELF
    if mode == "unbatched":
        if kdim == E and vdim == E:
            x = randn(rng, L_SELF, E)
            return (x, x, x), L_SELF, L_SELF
        qkv = (randn(rng, L_CROSS, E), randn(rng, S_CROSS, kdim), randn(rng, S_CROSS, vdim))
        return qkv, L_CROSS, S_CROSS
    def seq(length, dim):
        return randn(rng, N, length, dim) if bf else randn(rng, length, N, dim)
    return (seq(L_CROSS, E), seq(S_CROSS, kdim), seq(S_CROSS, vdim)), L_CROSS, S_CROSS


def mha_masks(rng, attn_kind, kpm_kind, l: int, s: int, batched: bool):
    """attn_mask (L, S) / (N*H, L, S) (unbatched: (H, L, S)) and
    key_padding_mask (N, S) (unbatched: (S,)), as numpy arrays or None."""
    heads3 = N * H if batched else H
    attn = {
        None: lambda: None,
        "bool2d": lambda: bool_mask(rng, l, s),
        "float2d": lambda: float_mask(rng, l, s),
        "bool3d": lambda: bool_mask(rng, heads3, l, s),
        "float3d": lambda: float_mask(rng, heads3, l, s),
        "causal": lambda: look_ahead_bool(l, s),
    }[attn_kind]()
    kpm_shape = (N, s) if batched else (s,)
    kpm = {
        None: lambda: None,
        "bool": lambda: bool_mask(rng, *kpm_shape),
        "float": lambda: float_mask(rng, *kpm_shape),
    }[kpm_kind]()
    return attn, kpm


@pytest.mark.parametrize(("cfg_name", "call_name", "mode"), list(mha_cases()))
def test_multihead_attention_equals_torch(cfg_name, call_name, mode, rng, tmp_path):
    cfg = MHA_CONFIGS[cfg_name]
    attn_kind, kpm_kind, is_causal, need_weights, average = MHA_CALLS[call_name]
    t = torch_module(lambda: torch.nn.MultiheadAttention(E, H, **cfg))
    m = load_weights(ma.MultiheadAttention(E, H, **cfg), t, tmp_path)
    (q, k, v), l, s = mha_inputs(rng, cfg, mode)
    attn_mask, kpm = mha_masks(rng, attn_kind, kpm_kind, l, s, batched=q.ndim == 3)
    kwargs = {
        "key_padding_mask": kpm, "need_weights": need_weights, "attn_mask": attn_mask,
        "average_attn_weights": average, "is_causal": is_causal,
    }
    tq = torch.from_numpy(q)
    # self-attention passes one tensor three times (torch's fast path needs that)
    tk, tv = (tq, tq) if k is q else (torch.from_numpy(k), torch.from_numpy(v))
    t_out, t_w = run_torch(t, tq, tk, tv, **as_torch(kwargs))
    out, w = m(q, k, v, **kwargs)

    assert_close(out, t_out, MODULE_ATOL, "out")
    if need_weights:
        assert w is not None
        assert_close(w, t_w, WEIGHTS_ATOL, "weights")
    else:
        assert w is None


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("cfg_name", ["default", "batch_first", "kdim_vdim"])
def test_multihead_attention_fully_masked_rows_give_zero_weights_and_bias_output(
    cfg_name, need_weights, rng, tmp_path
):
    """Batch 1: every key is padding; batch 0: query row 1 masks every key.
    torch gives NaN there; maskattn weights 0 and out = out_proj(0) =
    out_proj.bias. Every other row equals torch."""
    cfg = MHA_CONFIGS[cfg_name]
    t = torch_module(lambda: torch.nn.MultiheadAttention(E, H, **cfg))
    m = load_weights(ma.MultiheadAttention(E, H, **cfg), t, tmp_path)
    (q, k, v), l, s = mha_inputs(rng, cfg, "cross")
    kpm = np.zeros((N, s), dtype=bool)
    kpm[1, :] = True
    attn_mask = np.zeros((l, s), dtype=bool)
    attn_mask[1, :] = True
    # the empty (batch, query) rows, from the rule above
    empty = np.zeros((N, l), dtype=bool)
    empty[1, :] = True
    empty[:, 1] = True

    kwargs = {"key_padding_mask": kpm, "attn_mask": attn_mask, "need_weights": need_weights,
              "average_attn_weights": False}
    t_out, t_w = run_torch(t, *(torch.from_numpy(x) for x in (q, k, v)), **as_torch(kwargs))
    out, w = m(q, k, v, **kwargs)

    bf = cfg.get("batch_first", False)
    out_nl = out if bf else out.transpose(1, 0, 2)  # (N, L, E)
    t_nl = t_out.numpy() if bf else t_out.numpy().transpose(1, 0, 2)
    bias = t.out_proj.bias.detach().numpy()
    assert np.isfinite(out).all()
    assert_close(out_nl[empty], np.broadcast_to(bias, out_nl[empty].shape), MODULE_ATOL, "empty rows")
    assert_close(out_nl[~empty], t_nl[~empty], MODULE_ATOL, "other rows")
    if need_weights:
        w_nl = w.transpose(0, 2, 1, 3)  # (N, L, H, S)
        assert (w_nl[empty] == 0).all()
        assert_close(w_nl[~empty], t_w.numpy().transpose(0, 2, 1, 3)[~empty], WEIGHTS_ATOL, "weights")


# ---------------------------------------------------------------------------
# Extensions torch lacks: num_kv_heads, head_mask, maskattn.Mask — float64 oracle
# ---------------------------------------------------------------------------


def random_state(module, rng) -> dict[str, np.ndarray]:
    """Random values for every parameter of a maskattn module (matrices
    N(0, 1/fan_in), others N(0, 1))."""
    out = {}
    for name, p in module.state_dict().items():
        x = rng.standard_normal(p.shape)
        if p.ndim == 2:
            x /= math.sqrt(p.shape[1])
        out[name] = x.astype(np.float32)
    return out


def mha_oracle(sd, query, key, value, *, heads, kv_heads, batch_first, add_bias_kv=False,
               add_zero_attn=False, mask=None, head_mask=None):
    """torch.nn.MultiheadAttention's computation in float64 with grouped kv
    heads: the packed in_proj_weight is [W_q (E); W_k (Hkv*D); W_v (Hkv*D)],
    query head h reads kv head h // (H / Hkv). mask: additive, broadcastable
    to (N, H, L, S'). Returns (out in the module's layout, per-head weights)."""
    f64 = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in sd.items()}
    x = [torch.as_tensor(a, dtype=torch.float64) for a in (query, key, value)]
    if not batch_first:
        x = [a.transpose(0, 1) for a in x]  # (N, L, *)
    xq, xk, xv = x
    e = xq.shape[-1]
    d = e // heads
    ekv = kv_heads * d
    if "in_proj_weight" in f64:
        w = f64["in_proj_weight"]
        wq, wk, wv = w[:e], w[e:e + ekv], w[e + ekv:]
    else:
        wq, wk, wv = f64["q_proj_weight"], f64["k_proj_weight"], f64["v_proj_weight"]
    b = f64.get("in_proj_bias", torch.zeros(e + 2 * ekv, dtype=torch.float64))
    bq, bk, bv = b[:e], b[e:e + ekv], b[e + ekv:]
    n, l, s = xq.shape[0], xq.shape[1], xk.shape[1]
    q = (xq @ wq.T + bq).reshape(n, l, heads, d).transpose(1, 2)
    k = (xk @ wk.T + bk).reshape(n, s, kv_heads, d).transpose(1, 2)
    v = (xv @ wv.T + bv).reshape(n, s, kv_heads, d).transpose(1, 2)
    if add_bias_kv:
        k = torch.cat([k, f64["bias_k"].reshape(1, kv_heads, 1, d).expand(n, -1, -1, -1)], dim=2)
        v = torch.cat([v, f64["bias_v"].reshape(1, kv_heads, 1, d).expand(n, -1, -1, -1)], dim=2)
    if add_zero_attn:
        k = torch.cat([k, torch.zeros(n, kv_heads, 1, d, dtype=torch.float64)], dim=2)
        v = torch.cat([v, torch.zeros(n, kv_heads, 1, d, dtype=torch.float64)], dim=2)
    out, p, _ = attention_f64(q, k, v, mask, head_mask=head_mask)
    out = torch.as_tensor(out).transpose(1, 2).reshape(n, l, e)
    out = out @ f64["out_proj.weight"].T
    if "out_proj.bias" in f64:
        out = out + f64["out_proj.bias"]
    out = out.numpy()
    return (out if batch_first else out.transpose(1, 0, 2)), p


def causal_and_lengths_allowed(l, s, lengths):
    """(N, 1, L, S) bool: j <= i (top-left) and j < lengths[b]."""
    i = np.arange(l)[:, None]
    j = np.arange(s)[None, :]
    allowed = (j <= i)[None] & (j[None] < np.asarray(lengths)[:, None, None])
    return allowed[:, None]


EXTENSION_CASES = {
    # name: (constructor kwargs, mode, mask kind, head_mask kind, average)
    "gqa2-cross-per_head": ({"num_kv_heads": 2}, "cross", None, None, False),
    "gqa1-self-Mask_causal_lengths": ({"num_kv_heads": 1}, "self", "Mask", None, True),
    "gqa2-kdim_vdim-kpm_bool-head_mask_h": (
        {"num_kv_heads": 2, "kdim": KDIM, "vdim": VDIM}, "cross", "kpm_bool", "h", False),
    "gqa2-batch_first-bias_kv-zero_attn-kpm_bool": (
        {"num_kv_heads": 2, "add_bias_kv": True, "add_zero_attn": True, "batch_first": True},
        "cross", "kpm_bool", None, False),
    "head_mask_nh-batch_first": ({"batch_first": True}, "self", None, "nh", False),
    "head_mask_h-Mask_causal_lengths-averaged": ({}, "cross", "Mask", "h", True),
    "Mask_as_key_padding_mask": ({}, "cross", "Mask_kpm", None, False),
    "gqa2-no_bias-Mask-head_mask_nh": ({"num_kv_heads": 2, "bias": False}, "self", "Mask", "nh", False),
}


@pytest.mark.parametrize("case", list(EXTENSION_CASES))
def test_multihead_attention_extensions_equal_float64_oracle(case, rng):
    cfg, mode, mask_kind, hm_kind, average = EXTENSION_CASES[case]
    kv = cfg.get("num_kv_heads", H)
    d = E // H
    m = ma.MultiheadAttention(E, H, **cfg)
    assert (m.num_heads, m.num_kv_heads, m.head_dim) == (H, kv, d)
    shapes = dict(names_and_shapes(m.state_dict()))
    if "kdim" in cfg:
        assert shapes["q_proj_weight"] == (E, E)
        assert shapes["k_proj_weight"] == (kv * d, KDIM)
        assert shapes["v_proj_weight"] == (kv * d, VDIM)
    else:
        assert shapes["in_proj_weight"] == (E + 2 * kv * d, E)
    if cfg.get("bias", True):
        assert shapes["in_proj_bias"] == (E + 2 * kv * d,)
    if cfg.get("add_bias_kv"):
        assert shapes["bias_k"] == shapes["bias_v"] == (1, 1, kv * d)
    sd = random_state(m, rng)
    assert tuple(m.load_state_dict(sd)) == ([], [])
    m.eval()

    (q, k, v), l, s = mha_inputs(rng, cfg, mode)
    extra = int(cfg.get("add_bias_kv", False)) + int(cfg.get("add_zero_attn", False))
    kwargs = {"need_weights": True, "average_attn_weights": average}
    oracle_allowed = np.ones((N, 1, l, s + extra), dtype=bool)
    lengths = [s, 3]
    if mask_kind == "Mask":
        kwargs["attn_mask"] = ma.causal() & ma.key_lengths(lengths)
        oracle_allowed = causal_and_lengths_allowed(l, s, lengths)
    elif mask_kind == "Mask_kpm":
        kwargs["key_padding_mask"] = ma.key_lengths(lengths)
        oracle_allowed = ~padding_from_lengths(lengths, s)[:, None, None, :]
    elif mask_kind == "kpm_bool":
        kpm = bool_mask(rng, N, s)
        kwargs["key_padding_mask"] = kpm
        # torch's convention: the keys add_bias_kv / add_zero_attn append are never padding
        oracle_allowed = np.concatenate([~kpm, np.ones((N, extra), dtype=bool)], axis=1)[:, None, None, :]
    head_mask = None
    if hm_kind == "h":
        head_mask = np.array([1.0, 0.0, 0.5, 2.0], dtype=np.float32)
    elif hm_kind == "nh":
        head_mask = rng.uniform(0.0, 1.5, size=(N, H)).astype(np.float32)
    if head_mask is not None:
        kwargs["head_mask"] = head_mask

    out, w = m(q, k, v, **kwargs)
    want_out, want_p = mha_oracle(
        sd, q, k, v, heads=H, kv_heads=kv, batch_first=cfg.get("batch_first", False),
        add_bias_kv=cfg.get("add_bias_kv", False), add_zero_attn=cfg.get("add_zero_attn", False),
        mask=neg_inf_where_blocked(oracle_allowed), head_mask=head_mask,
    )
    assert_close(out, want_out, MODULE_ATOL, "out")
    assert_close(w, want_p.mean(axis=1) if average else want_p, WEIGHTS_ATOL, "weights")


def test_multihead_attention_rejects_num_kv_heads_that_do_not_divide_num_heads():
    with pytest.raises(ValueError, match="num_kv_heads"):
        ma.MultiheadAttention(E, H, num_kv_heads=3)


# ---------------------------------------------------------------------------
# Transformer layers, stacks and the full Transformer against torch.nn
# ---------------------------------------------------------------------------

D_MODEL, NHEAD, DFF = 32, 4, 64
TB = 3  # batch
S_LEN, T_LEN = 7, 5
SRC_LENGTHS = [7, 4, 2]
TGT_LENGTHS = [5, 3, 1]

LAYER_CONFIGS = {
    "post_norm-relu": dict(norm_first=False, activation="relu", batch_first=False, bias=True),
    "norm_first-gelu-batch_first": dict(norm_first=True, activation="gelu", batch_first=True, bias=True),
    "post_norm-gelu-batch_first-no_bias": dict(
        norm_first=False, activation="gelu", batch_first=True, bias=False),
    "norm_first-relu-no_bias": dict(norm_first=True, activation="relu", batch_first=False, bias=False),
}


def layer_kwargs(cfg: dict) -> dict:
    return dict(dim_feedforward=DFF, dropout=0.1, layer_norm_eps=1e-5, **cfg)


def seq(rng, length: int, batch_first: bool, unbatched: bool = False) -> np.ndarray:
    if unbatched:
        return randn(rng, length, D_MODEL)
    return randn(rng, TB, length, D_MODEL) if batch_first else randn(rng, length, TB, D_MODEL)


def look_ahead_float(size: int) -> tuple[np.ndarray, torch.Tensor]:
    """The float look-ahead mask of both libraries, asserted equal: maskattn's
    for maskattn, torch's for torch."""
    mine = ma.Transformer.generate_square_subsequent_mask(size)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(size)
    assert mine.dtype == np.float32 and mine.shape == (size, size)
    assert np.array_equal(mine, theirs.numpy())
    return mine, theirs


def self_masks(rng, case: str, length: int, lengths, unbatched: bool) -> dict:
    """One self-attention's masks by generic names: attn, kpm, causal."""
    pad = padding_from_lengths(lengths, length)
    if unbatched:
        pad = pad[1]  # (length,)
    if case == "none":
        return {}
    if case == "padding":
        return {"kpm": pad}
    if case == "look_ahead":
        return {"attn": look_ahead_float(length), "causal": True}
    if case == "look_ahead+padding":
        return {"attn": look_ahead_float(length), "kpm": pad}
    if case == "bool_mask+float_padding":
        return {"attn": bool_mask(rng, length, length), "kpm": float_padding(rng, pad)}
    if case == "float_3d_mask+bool_padding":
        return {"attn": float_mask(rng, TB * NHEAD, length, length), "kpm": pad}
    raise AssertionError(case)


def split_pair(kwargs: dict) -> tuple[dict, dict]:
    """(maskattn kwargs, torch kwargs): the look-ahead mask is a pair (each
    library's own), arrays become tensors for torch."""
    mine, theirs = {}, {}
    for k, v in kwargs.items():
        if isinstance(v, tuple):
            mine[k], theirs[k] = v
        else:
            mine[k] = v
            theirs[k] = torch.from_numpy(v) if isinstance(v, np.ndarray) else v
    return mine, theirs


def named_masks(masks: dict, attn: str, kpm: str, causal: str | None) -> dict:
    out = {}
    if "attn" in masks:
        out[attn] = masks["attn"]
    if "kpm" in masks:
        out[kpm] = masks["kpm"]
    if masks.get("causal") and causal is not None:
        out[causal] = True
    return out


ENCODER_MASK_CASES = ["none", "padding", "look_ahead", "bool_mask+float_padding",
                      "float_3d_mask+bool_padding", "unbatched+padding"]


def encoder_inputs(rng, cfg, case):
    unbatched = case.startswith("unbatched")
    src = seq(rng, S_LEN, cfg["batch_first"], unbatched)
    masks = self_masks(rng, case.removeprefix("unbatched+"), S_LEN, SRC_LENGTHS, unbatched)
    return src, masks


@pytest.mark.parametrize("case", ENCODER_MASK_CASES)
@pytest.mark.parametrize("cfg_name", list(LAYER_CONFIGS))
def test_transformer_encoder_layer_equals_torch(cfg_name, case, rng, tmp_path):
    cfg = LAYER_CONFIGS[cfg_name]
    t = torch_module(lambda: torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg)))
    m = load_weights(ma.TransformerEncoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg)), t, tmp_path)
    src, masks = encoder_inputs(rng, cfg, case)
    mine, theirs = split_pair(named_masks(masks, "src_mask", "src_key_padding_mask", "is_causal"))
    want = run_torch(t, torch.from_numpy(src), **theirs)
    assert_close(m(src, **mine), want, MODULE_ATOL)


@pytest.mark.parametrize("final_norm", [True, False], ids=["norm", "no_norm"])
@pytest.mark.parametrize("case", ENCODER_MASK_CASES)
@pytest.mark.parametrize("cfg_name", list(LAYER_CONFIGS))
def test_transformer_encoder_equals_torch(cfg_name, case, final_norm, rng, tmp_path):
    cfg = LAYER_CONFIGS[cfg_name]

    def build():
        layer = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg))
        norm = torch.nn.LayerNorm(D_MODEL, bias=cfg["bias"]) if final_norm else None
        # no nested tensors: padded positions keep real values, all are compared
        return torch.nn.TransformerEncoder(layer, 2, norm=norm, enable_nested_tensor=False)

    t = torch_module(build)
    layer = ma.TransformerEncoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg))
    norm = ma.LayerNorm(D_MODEL, bias=cfg["bias"]) if final_norm else None
    m = load_weights(ma.TransformerEncoder(layer, 2, norm=norm), t, tmp_path)
    src, masks = encoder_inputs(rng, cfg, case)
    mine, theirs = split_pair(named_masks(masks, "mask", "src_key_padding_mask", "is_causal"))
    want = run_torch(t, torch.from_numpy(src), **theirs)
    assert_close(m(src, **mine), want, MODULE_ATOL)


def test_transformer_encoder_equals_torch_nested_tensor_fast_path_on_real_positions(rng, tmp_path):
    """torch's default enable_nested_tensor=True: in eval mode with a key
    padding mask it runs on nested tensors and returns 0 at padded positions
    (asserted, so the path is known to have run); the real positions agree."""
    cfg = LAYER_CONFIGS["post_norm-relu"] | {"batch_first": True}

    def build():
        layer = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg))
        # no final norm: it would turn the padded zeros into norm.bias
        return torch.nn.TransformerEncoder(layer, 2)

    t = torch_module(build)
    assert t.use_nested_tensor
    m = load_weights(
        ma.TransformerEncoder(ma.TransformerEncoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg)), 2),
        t, tmp_path)
    src = seq(rng, S_LEN, batch_first=True)
    pad = padding_from_lengths(SRC_LENGTHS, S_LEN)  # (N, S)
    with torch.no_grad():  # the fast path runs only without grad
        want = t(torch.from_numpy(src), src_key_padding_mask=torch.from_numpy(pad)).numpy()
    got = m(src, src_key_padding_mask=pad)
    assert (want[pad] == 0).all()
    assert_close(got[~pad], want[~pad], MODULE_ATOL)


DECODER_MASK_CASES = ["none", "look_ahead", "look_ahead+padding", "bool_masks+memory_mask",
                      "float_3d_memory_mask", "unbatched"]


def decoder_inputs(rng, cfg, case):
    """tgt, memory and the masks by torch's decoder names (tgt_mask, memory_mask,
    tgt_key_padding_mask, memory_key_padding_mask, tgt_is_causal)."""
    unbatched = case == "unbatched"
    bf = cfg["batch_first"]
    tgt = seq(rng, T_LEN, bf, unbatched)
    memory = seq(rng, S_LEN, bf, unbatched)
    mem_pad = padding_from_lengths(SRC_LENGTHS, S_LEN)
    tgt_pad = padding_from_lengths(TGT_LENGTHS, T_LEN)
    kw: dict = {}
    if case == "look_ahead":
        kw = {"tgt_mask": look_ahead_float(T_LEN), "tgt_is_causal": True}
    elif case == "look_ahead+padding":
        kw = {"tgt_mask": look_ahead_float(T_LEN), "tgt_key_padding_mask": tgt_pad,
              "memory_key_padding_mask": mem_pad}
    elif case == "bool_masks+memory_mask":
        kw = {"tgt_mask": look_ahead_bool(T_LEN, T_LEN), "memory_mask": bool_mask(rng, T_LEN, S_LEN),
              "memory_key_padding_mask": float_padding(rng, mem_pad)}
    elif case == "float_3d_memory_mask":
        kw = {"memory_mask": float_mask(rng, TB * NHEAD, T_LEN, S_LEN),
              "tgt_key_padding_mask": float_padding(rng, tgt_pad)}
    elif case == "unbatched":
        kw = {"tgt_mask": look_ahead_float(T_LEN), "memory_key_padding_mask": mem_pad[1],
              "memory_mask": float_mask(rng, T_LEN, S_LEN)}
    return tgt, memory, kw


@pytest.mark.parametrize("case", DECODER_MASK_CASES)
@pytest.mark.parametrize("cfg_name", list(LAYER_CONFIGS))
def test_transformer_decoder_layer_equals_torch(cfg_name, case, rng, tmp_path):
    cfg = LAYER_CONFIGS[cfg_name]
    t = torch_module(lambda: torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg)))
    m = load_weights(ma.TransformerDecoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg)), t, tmp_path)
    tgt, memory, kw = decoder_inputs(rng, cfg, case)
    mine, theirs = split_pair(kw)
    want = run_torch(t, torch.from_numpy(tgt), torch.from_numpy(memory), **theirs)
    assert_close(m(tgt, memory, **mine), want, MODULE_ATOL)


@pytest.mark.parametrize("final_norm", [True, False], ids=["norm", "no_norm"])
@pytest.mark.parametrize("case", DECODER_MASK_CASES)
@pytest.mark.parametrize("cfg_name", list(LAYER_CONFIGS))
def test_transformer_decoder_equals_torch(cfg_name, case, final_norm, rng, tmp_path):
    cfg = LAYER_CONFIGS[cfg_name]

    def build():
        layer = torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg))
        norm = torch.nn.LayerNorm(D_MODEL, bias=cfg["bias"]) if final_norm else None
        return torch.nn.TransformerDecoder(layer, 2, norm=norm)

    t = torch_module(build)
    layer = ma.TransformerDecoderLayer(D_MODEL, NHEAD, **layer_kwargs(cfg))
    norm = ma.LayerNorm(D_MODEL, bias=cfg["bias"]) if final_norm else None
    m = load_weights(ma.TransformerDecoder(layer, 2, norm=norm), t, tmp_path)
    tgt, memory, kw = decoder_inputs(rng, cfg, case)
    mine, theirs = split_pair(kw)
    want = run_torch(t, torch.from_numpy(tgt), torch.from_numpy(memory), **theirs)
    assert_close(m(tgt, memory, **mine), want, MODULE_ATOL)


TRANSFORMER_MASK_CASES = ["none", "look_ahead", "all_padding", "src_mask+memory_mask", "unbatched"]


def transformer_torch(cfg: dict) -> torch.nn.Transformer:
    def build():
        return torch.nn.Transformer(D_MODEL, NHEAD, 2, 2, **layer_kwargs(cfg))

    t = torch_module(build)
    # no nested tensors in the encoder: padded memory positions keep real values
    assert hasattr(t.encoder, "use_nested_tensor")
    t.encoder.use_nested_tensor = False
    return t


@pytest.mark.parametrize("case", TRANSFORMER_MASK_CASES)
@pytest.mark.parametrize("cfg_name", list(LAYER_CONFIGS))
def test_transformer_equals_torch(cfg_name, case, rng, tmp_path):
    cfg = LAYER_CONFIGS[cfg_name]
    t = transformer_torch(cfg)
    m = load_weights(ma.Transformer(D_MODEL, NHEAD, 2, 2, **layer_kwargs(cfg)), t, tmp_path)
    unbatched = case == "unbatched"
    src = seq(rng, S_LEN, cfg["batch_first"], unbatched)
    tgt = seq(rng, T_LEN, cfg["batch_first"], unbatched)
    src_pad = padding_from_lengths(SRC_LENGTHS, S_LEN)
    tgt_pad = padding_from_lengths(TGT_LENGTHS, T_LEN)
    kw: dict = {}
    if case == "look_ahead":
        kw = {"tgt_mask": look_ahead_float(T_LEN), "tgt_is_causal": True}
    elif case == "all_padding":
        kw = {"tgt_mask": look_ahead_float(T_LEN), "src_key_padding_mask": src_pad,
              "tgt_key_padding_mask": tgt_pad, "memory_key_padding_mask": src_pad}
    elif case == "src_mask+memory_mask":
        kw = {"src_mask": bool_mask(rng, S_LEN, S_LEN), "tgt_mask": look_ahead_float(T_LEN),
              "memory_mask": float_mask(rng, T_LEN, S_LEN),
              "src_key_padding_mask": float_padding(rng, src_pad)}
    elif case == "unbatched":
        kw = {"tgt_mask": look_ahead_float(T_LEN), "src_key_padding_mask": src_pad[1],
              "tgt_key_padding_mask": tgt_pad[1], "memory_key_padding_mask": src_pad[1]}
    mine, theirs = split_pair(kw)
    want = run_torch(t, torch.from_numpy(src), torch.from_numpy(tgt), **theirs)
    assert_close(m(src, tgt, **mine), want, MODULE_ATOL)


@pytest.mark.parametrize("size", [1, 2, 6])
def test_generate_square_subsequent_mask_equals_torch(size):
    look_ahead_float(size)  # asserts dtype, shape and equality (-inf above the diagonal)


# ---------------------------------------------------------------------------
# state_dict: names, shapes, order; shared memory; load_state_dict errors
# ---------------------------------------------------------------------------


def module_pairs():
    """(id, torch factory, maskattn factory) for every module and configuration above."""
    for name, cfg in MHA_CONFIGS.items():
        yield (f"MultiheadAttention-{name}", lambda cfg=cfg: torch.nn.MultiheadAttention(E, H, **cfg),
               lambda cfg=cfg: ma.MultiheadAttention(E, H, **cfg))
    for name, cfg in LAYER_CONFIGS.items():
        kw = layer_kwargs(cfg)
        yield (f"TransformerEncoderLayer-{name}",
               lambda kw=kw: torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, **kw),
               lambda kw=kw: ma.TransformerEncoderLayer(D_MODEL, NHEAD, **kw))
        yield (f"TransformerDecoderLayer-{name}",
               lambda kw=kw: torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, **kw),
               lambda kw=kw: ma.TransformerDecoderLayer(D_MODEL, NHEAD, **kw))
        for final_norm in (True, False):
            b = cfg["bias"]
            yield (f"TransformerEncoder-{name}-{'norm' if final_norm else 'no_norm'}",
                   lambda kw=kw, fn=final_norm, b=b: torch.nn.TransformerEncoder(
                       torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, **kw), 2,
                       norm=torch.nn.LayerNorm(D_MODEL, bias=b) if fn else None,
                       enable_nested_tensor=False),
                   lambda kw=kw, fn=final_norm, b=b: ma.TransformerEncoder(
                       ma.TransformerEncoderLayer(D_MODEL, NHEAD, **kw), 2,
                       norm=ma.LayerNorm(D_MODEL, bias=b) if fn else None))
            yield (f"TransformerDecoder-{name}-{'norm' if final_norm else 'no_norm'}",
                   lambda kw=kw, fn=final_norm, b=b: torch.nn.TransformerDecoder(
                       torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, **kw), 2,
                       norm=torch.nn.LayerNorm(D_MODEL, bias=b) if fn else None),
                   lambda kw=kw, fn=final_norm, b=b: ma.TransformerDecoder(
                       ma.TransformerDecoderLayer(D_MODEL, NHEAD, **kw), 2,
                       norm=ma.LayerNorm(D_MODEL, bias=b) if fn else None))
        yield (f"Transformer-{name}", lambda kw=kw: torch.nn.Transformer(D_MODEL, NHEAD, 2, 3, **kw),
               lambda kw=kw: ma.Transformer(D_MODEL, NHEAD, 2, 3, **kw))
    for bias in (True, False):
        yield (f"Linear-bias_{bias}", lambda b=bias: torch.nn.Linear(5, 7, bias=b),
               lambda b=bias: ma.Linear(5, 7, bias=b))
    for kw in ({}, {"elementwise_affine": False}, {"bias": False}):
        yield (f"LayerNorm-{kw}", lambda kw=kw: torch.nn.LayerNorm(6, **kw),
               lambda kw=kw: ma.LayerNorm(6, **kw))
    yield ("Embedding", lambda: torch.nn.Embedding(10, 6, padding_idx=2),
           lambda: ma.Embedding(10, 6, padding_idx=2))
    yield ("Dropout", lambda: torch.nn.Dropout(0.3), lambda: ma.Dropout(0.3))


MODULE_PAIRS = {name: (tf, mf) for name, tf, mf in module_pairs()}


@pytest.mark.parametrize("name", list(MODULE_PAIRS))
def test_state_dict_names_shapes_and_order_equal_torch(name):
    torch_factory, ma_factory = MODULE_PAIRS[name]
    want = names_and_shapes(torch_factory().state_dict())
    state = ma_factory().state_dict()
    got = names_and_shapes(state)
    assert dict(got) == dict(want)  # names and shapes
    assert [k for k, _ in got] == [k for k, _ in want]  # and torch's order
    assert all(v.dtype == np.float32 for v in state.values())
    assert ma_factory().num_parameters() == sum(math.prod(s) for _, s in want)


def test_state_dict_arrays_share_the_modules_memory(rng):
    lin = ma.Linear(5, 3)
    x = randn(rng, 4, 5)
    y0 = lin(x)
    sd = lin.state_dict()
    sd["bias"] += 1.0  # writes the module's bias
    assert_close(lin(x), y0 + 1.0, 1e-6, "bias + 1")
    sd["weight"][...] = 0.0
    assert_close(lin(x), np.broadcast_to(sd["bias"], y0.shape), 0.0, "weight 0")

    tr = ma.Transformer(D_MODEL, NHEAD, 1, 1, DFF).eval()
    src, tgt = randn(rng, S_LEN, 2, D_MODEL), randn(rng, T_LEN, 2, D_MODEL)
    out0 = tr(src, tgt)
    tr.state_dict()["decoder.norm.bias"][...] += 1.0  # the last operation: out + 1
    assert_close(tr(src, tgt), out0 + 1.0, 1e-5, "decoder.norm.bias + 1")
    tr.state_dict()["encoder.layers.0.linear1.weight"][...] *= 2.0
    assert not np.allclose(tr(src, tgt), out0 + 1.0, atol=1e-3)


def pair_for_errors():
    t = torch_module(lambda: torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, DFF))
    m = ma.TransformerEncoderLayer(D_MODEL, NHEAD, DFF)
    return t, m, {k: v.numpy().copy() for k, v in t.state_dict().items()}


def whole_name(name: str) -> str:
    """A regex matching `name` as a whole identifier (not part of a longer one)."""
    return rf"(?<![\w.]){re.escape(name)}(?![\w.])"


@pytest.mark.parametrize("problem", ["missing", "unexpected", "wrong_shape", "wrong_shape_3d"])
def test_load_state_dict_errors_name_the_tensor_and_change_nothing(problem):
    _, m, sd = pair_for_errors()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    if problem == "missing":
        name = "self_attn.out_proj.bias"
        del sd[name]
    elif problem == "unexpected":
        name = "self_attn.bias_k"
        sd[name] = np.zeros((1, 1, D_MODEL), dtype=np.float32)
    elif problem == "wrong_shape":
        name = "linear1.weight"
        sd[name] = np.zeros((DFF, D_MODEL + 1), dtype=np.float32)
    else:
        name = "norm2.weight"
        sd[name] = np.zeros((1, D_MODEL), dtype=np.float32)
    with pytest.raises(ValueError, match=whole_name(name)):
        m.load_state_dict(sd)
    after = m.state_dict()
    for k, v in before.items():
        assert np.array_equal(after[k], v), f"{k} changed by a failed load"


def test_load_state_dict_non_strict_returns_torchs_missing_and_unexpected_keys():
    t, m, sd = pair_for_errors()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    partial = dict(sd)
    del partial["norm1.bias"], partial["linear2.weight"]
    partial["extra.weight"] = np.zeros(3, dtype=np.float32)
    partial["self_attn.bias_v"] = np.zeros((1, 1, D_MODEL), dtype=np.float32)

    torch_result = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, DFF).load_state_dict(
        {k: torch.from_numpy(v) for k, v in partial.items()}, strict=False)
    missing, unexpected = m.load_state_dict(partial, strict=False)
    assert sorted(missing) == sorted(torch_result.missing_keys) == ["linear2.weight", "norm1.bias"]
    assert sorted(unexpected) == sorted(torch_result.unexpected_keys)
    after = m.state_dict()
    for k in sd:
        want = before[k] if k in ("norm1.bias", "linear2.weight") else sd[k]
        assert np.array_equal(after[k], want), k


def test_load_state_dict_accepts_torch_tensors_and_float64(rng):
    t = torch_module(lambda: torch.nn.Linear(5, 4))
    m = ma.Linear(5, 4)
    assert tuple(m.load_state_dict(t.state_dict())) == ([], [])
    x = randn(rng, 3, 5)
    assert_close(m(x), run_torch(t, torch.from_numpy(x)), MODULE_ATOL)
    m2 = ma.Linear(5, 4)
    m2.load_state_dict({k: v.double().numpy() for k, v in t.state_dict().items()})
    assert_close(m2(x), run_torch(t, torch.from_numpy(x)), MODULE_ATOL)


# ---------------------------------------------------------------------------
# Small modules
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 3, 5), (2, 1, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_torch_with_any_leading_dims(shape, bias, rng, tmp_path):
    t = torch_module(lambda: torch.nn.Linear(5, 7, bias=bias))
    m = load_weights(ma.Linear(5, 7, bias=bias), t, tmp_path)
    assert (m.in_features, m.out_features) == (5, 7)
    x = randn(rng, *shape)
    assert_close(m(x), run_torch(t, torch.from_numpy(x)), MODULE_ATOL)
    # a non-contiguous input reads the same values
    xt = np.ascontiguousarray(np.swapaxes(x, 0, -1)).swapaxes(0, -1) if x.ndim > 1 else x
    assert_close(m(xt), run_torch(t, torch.from_numpy(x)), MODULE_ATOL)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"eps": 1e-2}, {"elementwise_affine": False}, {"bias": False}, {"eps": 0.5, "bias": False}],
    ids=str,
)
def test_layer_norm_equals_torch(kwargs, rng, tmp_path):
    t = torch_module(lambda: torch.nn.LayerNorm(6, **kwargs))
    m = load_weights(ma.LayerNorm(6, **kwargs), t, tmp_path)
    x = 2.0 * randn(rng, 2, 3, 6) + 1.0  # a mean and a scale for the norm to remove
    assert_close(m(x), run_torch(t, torch.from_numpy(x)), MODULE_ATOL)
    assert_close(m(x[0, 0]), run_torch(t, torch.from_numpy(x[0, 0])), MODULE_ATOL)


def test_layer_norm_takes_a_one_element_shape_like_torch(rng):
    x = randn(rng, 3, 6)
    assert_close(ma.LayerNorm([6])(x), torch.nn.LayerNorm([6])(torch.from_numpy(x)).detach(), MODULE_ATOL)


@pytest.mark.parametrize("ids_shape", [(4,), (2, 3), (2, 2, 3)])
def test_embedding_equals_torch_and_scales_by_sqrt_dim(ids_shape, rng, tmp_path):
    t = torch_module(lambda: torch.nn.Embedding(10, 6, padding_idx=2))
    m = load_weights(ma.Embedding(10, 6, padding_idx=2), t, tmp_path)
    scaled = load_weights(ma.Embedding(10, 6, padding_idx=2, scale_by_sqrt_dim=True), t, tmp_path, "s")
    assert (m.num_embeddings, m.embedding_dim) == (10, 6)
    ids = rng.integers(0, 10, size=ids_shape).astype(np.int64)
    ids.flat[0] = 2  # the padding id: looked up like any other in the forward pass
    want = run_torch(t, torch.from_numpy(ids)).numpy()
    assert_close(m(ids), want, MODULE_ATOL)
    assert_close(scaled(ids), want * math.sqrt(6), MODULE_ATOL)


def test_embedding_padding_row_starts_at_zero_as_torchs():
    fresh = ma.Embedding(10, 6, padding_idx=2).state_dict()["weight"]
    assert (fresh[2] == 0).all()
    assert (np.abs(np.delete(fresh, 2, axis=0)) > 0).all()
    # torch initialises N(0, 1): a loose check of the spread of 54 values
    assert 0.5 < np.delete(fresh, 2, axis=0).std() < 1.5


P_DROP = 0.3


def test_dropout_eval_is_identity_and_train_zeroes_a_fraction_p_scaling_the_rest(rng):
    d = ma.Dropout(P_DROP)
    assert d.p == pytest.approx(P_DROP) and d.training  # torch modules start in training mode
    x = randn(rng, 200, 500)
    assert np.all(x != 0)
    y = d(x)
    zero = y == 0
    n = x.size
    sigma = math.sqrt(P_DROP * (1 - P_DROP) / n)
    assert abs(zero.mean() - P_DROP) < 5 * sigma
    np.testing.assert_allclose(y[~zero], x[~zero] / (1 - P_DROP), rtol=1e-6, atol=0)
    assert d.eval() is d and not d.training
    assert np.array_equal(d(x), x)


def test_dropout_seed_reproduces_and_another_seed_differs(rng):
    d = ma.Dropout(P_DROP)
    x = randn(rng, 64, 64)
    d.seed(11)
    a1, a2 = d(x), d(x)
    assert not np.array_equal(a1 == 0, a2 == 0)  # each call draws afresh
    d.seed(11)
    b1, b2 = d(x), d(x)
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2)
    d.seed(12)
    assert not np.array_equal(d(x) == 0, a1 == 0)


class TutorialPositionalEncoding(torch.nn.Module):
    """The PyTorch tutorial's module ("Language Modeling with nn.Transformer"), verbatim."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = torch.nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pe[: x.size(0)]
        return self.dropout(x)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("offset", [0, 9])
def test_positional_encoding_equals_the_pytorch_tutorial(batch_first, offset, rng):
    # max_len small: the tutorial computes position * div_term in float32,
    # whose rounding at positions in the thousands exceeds MODULE_ATOL.
    d_model, max_len, length = 16, 64, 7
    tut = TutorialPositionalEncoding(d_model, 0.1, max_len).eval()
    m = ma.PositionalEncoding(d_model, 0.1, max_len).eval()
    assert m.state_dict() == {}  # no parameters (the tutorial's pe is a buffer)
    x = randn(rng, 2, length, d_model) if batch_first else randn(rng, length, 2, d_model)
    x_lnd = torch.from_numpy(x.swapaxes(0, 1) if batch_first else x)
    if offset == 0:
        want = run_torch(tut, x_lnd)
    else:  # the tutorial has no offset: its pe buffer from position `offset` on
        want = x_lnd + tut.pe[offset: offset + length]
    want = want.numpy()
    if batch_first:
        want = want.swapaxes(0, 1)
    assert_close(m(x, batch_first=batch_first, offset=offset), want, MODULE_ATOL)


def test_positional_encoding_train_mode_applies_dropout(rng):
    m = ma.PositionalEncoding(16, 0.5, 32)
    x = randn(rng, 20, 4, 16)
    y = m(x)
    base = x + TutorialPositionalEncoding(16, 0.0, 32).pe[:20].numpy()
    zero = y == 0
    assert 0.3 < zero.mean() < 0.7
    assert_close(y[~zero], base[~zero] * 2.0, MODULE_ATOL)


# ---------------------------------------------------------------------------
# Training mode: dropout active, reproducible from seed(), off after eval()
# ---------------------------------------------------------------------------


def training_cases():
    """(id, torch factory without dropout, maskattn factory with dropout, call)."""
    def mha_call(m, x, y):
        return m(x, x, x)[0]

    def enc_call(m, x, y):
        return m(x)

    def dec_call(m, x, y):
        return m(y, x)

    def tr_call(m, x, y):
        return m(x, y)

    kw = dict(dim_feedforward=DFF, activation="gelu", norm_first=True)
    return {
        "MultiheadAttention": (lambda: torch.nn.MultiheadAttention(D_MODEL, NHEAD, dropout=0.0),
                               lambda: ma.MultiheadAttention(D_MODEL, NHEAD, dropout=0.3), mha_call),
        "TransformerEncoderLayer": (
            lambda: torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, dropout=0.0, **kw),
            lambda: ma.TransformerEncoderLayer(D_MODEL, NHEAD, dropout=0.3, **kw), enc_call),
        "TransformerDecoderLayer": (
            lambda: torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, dropout=0.0, **kw),
            lambda: ma.TransformerDecoderLayer(D_MODEL, NHEAD, dropout=0.3, **kw), dec_call),
        "Transformer": (
            lambda: torch.nn.Transformer(D_MODEL, NHEAD, 2, 2, dropout=0.0, **kw),
            lambda: ma.Transformer(D_MODEL, NHEAD, 2, 2, dropout=0.3, **kw), tr_call),
    }


TRAINING_CASES = training_cases()


@pytest.mark.parametrize("name", list(TRAINING_CASES))
def test_training_mode_dropout_is_random_seedable_and_off_after_eval(name, rng, tmp_path):
    torch_factory, ma_factory, call = TRAINING_CASES[name]
    t = torch_module(torch_factory)
    m = ma_factory()
    assert m.training  # torch modules start in training mode
    load_weights(m, t, tmp_path)  # leaves it in eval mode
    assert m.train() is m and m.training
    x = randn(rng, S_LEN, 2, D_MODEL)
    y = randn(rng, T_LEN, 2, D_MODEL)

    first, second = call(m, x, y), call(m, x, y)
    assert not np.array_equal(first, second)  # fresh draws per call

    m.seed(5)
    run_a = [call(m, x, y) for _ in range(3)]
    m.seed(5)
    run_b = [call(m, x, y) for _ in range(3)]
    for a, b in zip(run_a, run_b):
        assert np.array_equal(a, b)  # bit-identical replay
    m.seed(6)
    assert not np.array_equal(call(m, x, y), run_a[0])

    assert m.eval() is m and not m.training
    with torch.no_grad():
        want = call(t, torch.from_numpy(x), torch.from_numpy(y))
    got = call(m, x, y)
    assert np.array_equal(got, call(m, x, y))
    assert_close(got, want.detach(), MODULE_ATOL)


# ---------------------------------------------------------------------------
# Bad input: ValueError naming the argument the caller passed
# ---------------------------------------------------------------------------


def bad_input_cases():
    enc = ma.TransformerEncoderLayer(D_MODEL, NHEAD, DFF)
    stack = ma.TransformerEncoder(enc, 1)
    dec = ma.TransformerDecoderLayer(D_MODEL, NHEAD, DFF)
    dstack = ma.TransformerDecoder(dec, 1)
    tr = ma.Transformer(D_MODEL, NHEAD, 1, 1, DFF)
    mha = ma.MultiheadAttention(E, H, kdim=KDIM, vdim=VDIM)
    z = np.zeros
    src = z((S_LEN, TB, D_MODEL), np.float32)
    tgt = z((T_LEN, TB, D_MODEL), np.float32)
    q = z((L_CROSS, N, E), np.float32)
    k = z((S_CROSS, N, KDIM), np.float32)
    v = z((S_CROSS, N, VDIM), np.float32)
    bad_pad = z((TB, S_LEN + 1), bool)
    cases = {
        # wrong d_model / embed_dim / kdim
        "encoder_layer-src_d_model": (lambda: enc(z((S_LEN, TB, D_MODEL + 1), np.float32)), "src"),
        "encoder-src_d_model": (lambda: stack(z((S_LEN, TB, 8), np.float32)), "src"),
        "decoder_layer-tgt_d_model": (lambda: dec(z((T_LEN, TB, 8), np.float32), src), "tgt"),
        "decoder_layer-memory_d_model": (lambda: dec(tgt, z((S_LEN, TB, 8), np.float32)), "memory"),
        "transformer-src_d_model": (lambda: tr(z((S_LEN, TB, 8), np.float32), tgt), "src"),
        "transformer-tgt_d_model": (lambda: tr(src, z((T_LEN, TB, 8), np.float32)), "tgt"),
        "mha-query_embed_dim": (lambda: mha(z((L_CROSS, N, E + 1), np.float32), k, v), "query"),
        "mha-key_kdim": (lambda: mha(q, z((S_CROSS, N, E), np.float32), v), "key"),
        "mha-value_vdim": (lambda: mha(q, k, z((S_CROSS, N, E), np.float32)), "value"),
        # wrong rank
        "encoder_layer-src_rank4": (lambda: enc(z((2, S_LEN, TB, D_MODEL), np.float32)), "src"),
        "encoder_layer-src_rank1": (lambda: enc(z((D_MODEL,), np.float32)), "src"),
        "decoder-memory_rank4": (lambda: dstack(tgt, z((1, S_LEN, TB, D_MODEL), np.float32)), "memory"),
        "mha-query_rank4": (lambda: mha(z((1, L_CROSS, N, E), np.float32), k, v), "query"),
        # mismatched batch
        "transformer-batch": (lambda: tr(src, z((T_LEN, TB + 1, D_MODEL), np.float32)), "tgt"),
        "decoder_layer-batch": (lambda: dec(tgt, z((S_LEN, TB + 1, D_MODEL), np.float32)), "memory"),
        "decoder-batch": (lambda: dstack(tgt, z((S_LEN, TB + 1, D_MODEL), np.float32)), "memory"),
        "mha-key_batch": (lambda: mha(q, z((S_CROSS, N + 1, KDIM), np.float32),
                                      z((S_CROSS, N + 1, VDIM), np.float32)), "key"),
        # masks of the wrong shape
        "mha-attn_mask": (lambda: mha(q, k, v, attn_mask=z((L_CROSS, S_CROSS + 1), bool)), "attn_mask"),
        "mha-attn_mask_3d": (lambda: mha(q, k, v, attn_mask=z((N, L_CROSS, S_CROSS), bool)), "attn_mask"),
        "mha-key_padding_mask": (lambda: mha(q, k, v, key_padding_mask=z((N, L_CROSS), bool)),
                                 "key_padding_mask"),
        "encoder_layer-src_mask": (lambda: enc(src, src_mask=z((S_LEN, S_LEN - 1), bool)), "src_mask"),
        "encoder_layer-src_key_padding_mask": (lambda: enc(src, src_key_padding_mask=bad_pad),
                                               "src_key_padding_mask"),
        "encoder-mask": (lambda: stack(src, mask=z((S_LEN + 1, S_LEN), np.float32)), "mask"),
        "encoder-src_key_padding_mask": (lambda: stack(src, src_key_padding_mask=bad_pad),
                                         "src_key_padding_mask"),
        "decoder_layer-tgt_mask": (lambda: dec(tgt, src, tgt_mask=z((T_LEN, S_LEN), bool)), "tgt_mask"),
        "decoder_layer-memory_mask": (lambda: dec(tgt, src, memory_mask=z((T_LEN, T_LEN), bool)),
                                      "memory_mask"),
        "decoder_layer-tgt_key_padding_mask": (
            lambda: dec(tgt, src, tgt_key_padding_mask=z((TB, S_LEN), bool)), "tgt_key_padding_mask"),
        "decoder-memory_key_padding_mask": (
            lambda: dstack(tgt, src, memory_key_padding_mask=z((TB, T_LEN), bool)),
            "memory_key_padding_mask"),
        "transformer-src_key_padding_mask": (
            lambda: tr(src, tgt, src_key_padding_mask=bad_pad), "src_key_padding_mask"),
        "transformer-tgt_mask": (
            lambda: tr(src, tgt, tgt_mask=z((T_LEN + 1, T_LEN + 1), np.float32)), "tgt_mask"),
        "transformer-memory_key_padding_mask": (
            lambda: tr(src, tgt, memory_key_padding_mask=z((TB, T_LEN), bool)), "memory_key_padding_mask"),
    }
    return cases


BAD_INPUT_CASES = bad_input_cases()


@pytest.mark.parametrize("case", list(BAD_INPUT_CASES))
def test_bad_input_raises_value_error_naming_the_argument(case):
    fn, argument = BAD_INPUT_CASES[case]
    with pytest.raises(ValueError, match=whole_name(argument)):
        fn()
