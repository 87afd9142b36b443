"""Shared pieces of the parity suite.

Tolerances (fp32 storage, unit-variance inputs), stated once for every test:
  WEIGHTS_ATOL  attention weights (probabilities) against a float64 oracle
  OUT_ATOL      attention outputs against a float64 oracle or PyTorch fp32
  LSE_ATOL      log-sum-exp of a row
The oracle (`attention_f64`) is plain torch float64 arithmetic on a dense
additive mask that each test builds from the rule it checks, never from
maskattn's own materialize().
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

import maskattn as ma

WEIGHTS_ATOL = 2e-5
OUT_ATOL = 2e-4
LSE_ATOL = 2e-5

# Comparisons with PyTorch run it on this machine's 2 cores.
torch.set_num_threads(2)


# The attention backends the parity tests check one by one; "auto" runs flash.
BACKENDS = ["reference", "flash"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Each of BACKENDS in turn (the test id names it)."""
    return request.param


@pytest.fixture
def attend(backend):
    """ma.attention with backend=backend."""
    return functools.partial(ma.attention, backend=backend)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator per test, so each test's inputs are fixed."""
    return np.random.default_rng(20261123)


def randn(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Unit-variance float32 array."""
    return rng.standard_normal(shape, dtype=np.float32)


def attention_f64(
    q,
    k,
    v,
    mask=None,
    *,
    scale: float | None = None,
    softcap: float = 0.0,
    head_mask=None,
):
    """Textbook attention in float64 torch: the oracle.

    q (B, Hq, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv); mask: additive,
    broadcastable to (B, Hq, Lq, Lk), -inf = masked; head_mask (Hq,) or
    (B, Hq). Fully masked rows give out 0, weights 0 and lse -inf (maskattn's
    empty_rows="zero"). Returns numpy float64 (out, weights, lse).
    """
    q, k, v = (torch.as_tensor(np.asarray(x), dtype=torch.float64) for x in (q, k, v))
    b, hq, lq, d = q.shape
    hkv, lk = k.shape[1], k.shape[2]
    group = hq // hkv
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d) if scale is None else scale)
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    if mask is not None:
        s = s + torch.as_tensor(np.asarray(mask), dtype=torch.float64)
    s = s.expand(b, hq, lq, lk)
    empty = torch.isneginf(s).all(dim=-1, keepdim=True)
    lse = torch.logsumexp(torch.where(empty, torch.zeros_like(s), s), dim=-1, keepdim=True)
    p = torch.where(empty, torch.zeros_like(s), torch.exp(s - lse))
    lse = torch.where(empty, torch.full_like(lse, -math.inf), lse)
    if head_mask is not None:
        hm = torch.as_tensor(np.asarray(head_mask), dtype=torch.float64)
        hm = hm.reshape(1, hq, 1, 1) if hm.dim() == 1 else hm.reshape(b, hq, 1, 1)
        p = p * hm
    out = p @ v
    return out.numpy(), p.numpy(), lse.squeeze(-1).numpy()


def neg_inf_where_blocked(allowed: np.ndarray) -> np.ndarray:
    """Additive float64 mask from a bool 'may attend' array."""
    return np.where(allowed, 0.0, -np.inf)
