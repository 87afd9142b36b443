"""``ma.from_torch_mha_mask`` against what ``torch.nn.MultiheadAttention`` does.

An ``nn.MultiheadAttention(E, H, batch_first=True)`` with random weights (and
random, non-zero projection biases) is the oracle. The test redoes its
computation by hand: the in-projection with the module's own
``in_proj_weight`` / ``in_proj_bias`` (torch, float32), split into heads
(B, H, L, D), ``ma.attention`` with ``ma.from_torch_mha_mask(attn_mask,
key_padding_mask, num_heads=H)``, merge heads, ``out_proj``. The module's
output and its per-head weights (``need_weights=True,
average_attn_weights=False``) must agree with maskattn's.

PyTorch's conventions checked here: a bool mask is True = masked (for both
``attn_mask`` and ``key_padding_mask``), a float mask is added to the scores,
a 3-D ``attn_mask`` is (B * num_heads, L, S) with index ``b * num_heads + h``,
and int / uint8 masks are rejected.

The module has two implementations, and each comparison says which one it ran
(a spy on ``torch._native_multi_head_attention`` proves it):
  slow  ``F.multi_head_attention_forward`` (taken here because grad is enabled
        and the parameters require grad);
  fast  the fused ``torch._native_multi_head_attention`` (taken under
        ``torch.no_grad()`` for self-attention, query is key is value, with
        bool masks or none; float masks are never sent to it).
Fully masked rows: both paths give NaN when the weights are requested
(``need_weights=True``); the slow path's SDPA branch (``need_weights=False``)
gives 0 in torch 2.15, the same as maskattn's default ``empty_rows="zero"``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import OUT_ATOL, WEIGHTS_ATOL

import maskattn as ma

B, E, H = 2, 16, 2  # H even: the fast path requires an even number of heads
D = E // H

# (L, S): self-attention uses the same tensor for query, key and value.
SELF = (5, 5)
CROSS = (4, 6)


# ---------------------------------------------------------------------------
# The module, and the two ways of computing its output
# ---------------------------------------------------------------------------


def make_mha(seed: int = 0) -> torch.nn.MultiheadAttention:
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True)
    with torch.no_grad():  # the default biases are zero; make them count
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    return mha.eval()


def make_inputs(lq: int, s: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, L, E) and memory (B, S, E); self-attention passes x itself."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, lq, E, generator=g)
    if (lq, s) == SELF:
        return x, x
    return x, torch.randn(B, s, E, generator=g)


def run_torch(mha, x, memory, attn_mask, key_padding_mask, path, monkeypatch):
    """The module's (out (B, L, E), weights (B, H, L, S)) as numpy, asserting
    that the requested implementation ("slow" or "fast") actually ran."""
    fused_calls = []
    native = torch._native_multi_head_attention

    def spy(*args, **kwargs):
        fused_calls.append(1)
        return native(*args, **kwargs)

    monkeypatch.setattr(torch, "_native_multi_head_attention", spy)
    # Grad enabled with parameters that require grad rules the fast path out.
    ctx = torch.no_grad() if path == "fast" else torch.enable_grad()
    with ctx:
        out, weights = mha(
            x,
            memory,
            memory,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=True,
            average_attn_weights=False,
        )
    assert bool(fused_calls) == (path == "fast"), f"expected the {path} path"
    return out.detach().numpy(), weights.detach().numpy()


def run_maskattn(mha, x, memory, mask):
    """The same computation with ma.attention: (out (B, L, E) after out_proj,
    per-head attention output (B, H, L, D), weights (B, H, L, S))."""
    with torch.no_grad():
        w, b = mha.in_proj_weight, mha.in_proj_bias
        q = torch.nn.functional.linear(x, w[:E], b[:E])
        k = torch.nn.functional.linear(memory, w[E : 2 * E], b[E : 2 * E])
        v = torch.nn.functional.linear(memory, w[2 * E :], b[2 * E :])

        def heads(t):  # (B, n, E) -> (B, H, n, D): head h owns features h*D..h*D+D
            return t.reshape(t.shape[0], t.shape[1], H, D).transpose(1, 2).contiguous()

        o, weights = ma.attention(heads(q), heads(k), heads(v), mask, need_weights=True)
        merged = torch.from_numpy(o).transpose(1, 2).reshape(x.shape[0], x.shape[1], E)
        out = mha.out_proj(merged)
    return out.numpy(), o, weights


# ---------------------------------------------------------------------------
# Masks in PyTorch's conventions, built from the rule (numpy rng)
# ---------------------------------------------------------------------------


def _blocked(rng, shape) -> np.ndarray:
    """Random bool 'masked' pattern (about 40 %); key 0 is never masked, so no
    row is fully masked."""
    m = rng.random(shape) < 0.4
    m[..., 0] = False
    return m


def _padding(s: int) -> np.ndarray:
    """key_padding_mask rule: batch 0 has all S keys, batch 1 its first S-2."""
    lengths = np.array([s, s - 2])
    return np.arange(s)[None, :] >= lengths[:, None]  # True = padding


def _additive(rng, blocked: np.ndarray) -> np.ndarray:
    """Random finite biases, -inf where blocked."""
    vals = rng.standard_normal(blocked.shape).astype(np.float32)
    return np.where(blocked, -np.inf, vals).astype(np.float32)


def masks_for(case: str, rng, lq: int, s: int):
    """(attn_mask, key_padding_mask) torch tensors for a named case."""
    attn, kpm = None, None
    kind = case.split("+")
    for part in kind:
        if part == "bool2d":
            attn = torch.from_numpy(_blocked(rng, (lq, s)))
        elif part == "bool3d":
            attn = torch.from_numpy(_blocked(rng, (B * H, lq, s)))
        elif part == "float2d":
            attn = torch.from_numpy(_additive(rng, _blocked(rng, (lq, s))))
        elif part == "float3d":
            attn = torch.from_numpy(_additive(rng, _blocked(rng, (B * H, lq, s))))
        elif part == "kpm_bool":
            kpm = torch.from_numpy(_padding(s))
        elif part == "kpm_float":
            kpm = torch.from_numpy(_additive(rng, _padding(s)))
        else:
            assert part == "none", part
    return attn, kpm


def blocked_bhls(attn_mask, key_padding_mask, lq: int, s: int) -> np.ndarray:
    """Which (b, h, i, j) PyTorch masks, by its documented rule (bool True or
    float -inf), expanded to (B, H, L, S)."""
    out = np.zeros((B, H, lq, s), dtype=bool)
    if attn_mask is not None:
        a = attn_mask.numpy()
        a = a if a.dtype == np.bool_ else np.isneginf(a)
        out |= a.reshape(B, H, lq, s) if a.ndim == 3 else a[None, None]
    if key_padding_mask is not None:
        p = key_padding_mask.numpy()
        p = p if p.dtype == np.bool_ else np.isneginf(p)
        out |= p[:, None, None, :]
    return out


MASK_CASES = [
    "none",
    "bool2d",
    "bool3d",
    "float2d",
    "float3d",
    "kpm_bool",
    "kpm_float",
    "bool2d+kpm_bool",
    "bool3d+kpm_bool",
    "float2d+kpm_float",
    "float3d+kpm_float",
    # Mixed dtypes: PyTorch warns it is deprecated, but still adds them.
    "bool3d+kpm_float",
]


def _fast_eligible(case: str, geometry) -> bool:
    return geometry == SELF and "float" not in case


PARAMS = [
    pytest.param(case, geometry, path, id=f"{case}-{name}-{path}")
    for case in MASK_CASES
    for geometry, name in ((SELF, "self"), (CROSS, "cross"))
    for path in ("slow", "fast")
    if path == "slow" or _fast_eligible(case, geometry)
]


# ---------------------------------------------------------------------------
# Output and per-head weights agree
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "geometry", "path"), PARAMS)
def test_output_and_weights_match_multihead_attention(case, geometry, path, rng, monkeypatch):
    lq, s = geometry
    mha = make_mha()
    x, memory = make_inputs(lq, s)
    attn_mask, kpm = masks_for(case, rng, lq, s)

    with warnings.catch_warnings():  # only PyTorch's mixed-dtype deprecation
        warnings.filterwarnings("ignore", message="Support for mismatched")
        want_out, want_w = run_torch(mha, x, memory, attn_mask, kpm, path, monkeypatch)

    mask = ma.from_torch_mha_mask(attn_mask, kpm, num_heads=H)
    got_out, _, got_w = run_maskattn(mha, x, memory, mask)

    assert not np.isnan(want_out).any()  # the cases keep a key in every row
    assert want_w.shape == got_w.shape == (B, H, lq, s)
    np.testing.assert_allclose(got_w, want_w, rtol=0, atol=WEIGHTS_ATOL)
    np.testing.assert_allclose(got_out, want_out, rtol=0, atol=OUT_ATOL)
    # The masked pairs, by PyTorch's rule, get exactly zero weight.
    blocked = blocked_bhls(attn_mask, kpm, lq, s)
    assert (got_w[blocked] == 0).all()
    assert blocked.any() or case == "none"


def test_numpy_masks_read_like_torch_tensors(rng):
    """The adapter takes numpy arrays in the same conventions as tensors."""
    lq, s = CROSS
    attn_mask, kpm = masks_for("float3d+kpm_bool", rng, lq, s)
    mha = make_mha()
    x, memory = make_inputs(lq, s)
    from_torch = run_maskattn(mha, x, memory, ma.from_torch_mha_mask(attn_mask, kpm, num_heads=H))
    from_numpy = run_maskattn(
        mha, x, memory, ma.from_torch_mha_mask(attn_mask.numpy(), kpm.numpy(), num_heads=H)
    )
    np.testing.assert_array_equal(from_numpy[2], from_torch[2])
    np.testing.assert_array_equal(from_numpy[0], from_torch[0])


# ---------------------------------------------------------------------------
# Fully masked rows: PyTorch gives NaN, maskattn zeros
# ---------------------------------------------------------------------------


def _empty_row_masks(kind: str, rng, lq: int, s: int):
    """Masks with some fully masked (b, h, i) rows, and the rest not."""
    if kind == "kpm_all_padding":  # batch 1 is all padding: every row of b=1
        kpm = np.zeros((B, s), dtype=bool)
        kpm[1, :] = True
        return None, torch.from_numpy(kpm)
    if kind == "bool3d_one_row":  # (b=0, h=1, i=2) sees nothing
        attn = _blocked(rng, (B * H, lq, s))
        attn[0 * H + 1, 2, :] = True
        return torch.from_numpy(attn), None
    if kind == "float2d_one_row":  # query 1 sees nothing, in every (b, h)
        blocked = _blocked(rng, (lq, s))
        blocked[1, :] = True
        return torch.from_numpy(_additive(rng, blocked)), None
    raise AssertionError(kind)


EMPTY_PARAMS = [
    pytest.param(kind, path, id=f"{kind}-{path}")
    for kind in ("kpm_all_padding", "bool3d_one_row", "float2d_one_row")
    for path in ("slow", "fast")
    if path == "slow" or "float" not in kind
]


@pytest.mark.parametrize(("kind", "path"), EMPTY_PARAMS)
def test_fully_masked_rows_are_nan_in_torch_and_zero_in_maskattn(kind, path, rng, monkeypatch):
    lq, s = SELF  # self-attention, so the fast path can run
    mha = make_mha()
    x, memory = make_inputs(lq, s)
    attn_mask, kpm = _empty_row_masks(kind, rng, lq, s)
    empty = blocked_bhls(attn_mask, kpm, lq, s).all(axis=-1)  # (B, H, L), by the rule
    assert empty.any() and not empty.all()

    want_out, want_w = run_torch(mha, x, memory, attn_mask, kpm, path, monkeypatch)
    got_out, got_heads, got_w = run_maskattn(
        mha, x, memory, ma.from_torch_mha_mask(attn_mask, kpm, num_heads=H)
    )

    # PyTorch: NaN weights exactly on the empty rows; an output row (b, i) is
    # NaN when any head's row is empty (out_proj mixes the heads).
    np.testing.assert_array_equal(np.isnan(want_w).all(axis=-1), empty)
    np.testing.assert_array_equal(np.isnan(want_w).any(axis=-1), empty)
    nan_rows = empty.any(axis=1)  # (B, L)
    np.testing.assert_array_equal(np.isnan(want_out).any(axis=-1), nan_rows)

    # maskattn: zeros there, the same as PyTorch everywhere else.
    assert (got_w[empty] == 0).all()
    assert (got_heads[empty] == 0).all()
    assert not np.isnan(got_out).any()
    np.testing.assert_allclose(got_w[~empty], want_w[~empty], rtol=0, atol=WEIGHTS_ATOL)
    np.testing.assert_allclose(got_out[~nan_rows], want_out[~nan_rows], rtol=0, atol=OUT_ATOL)


def test_fully_masked_rows_sdpa_branch_gives_zero_like_maskattn(rng):
    """The slow path without weights runs SDPA, which in torch 2.15 gives 0
    for a fully masked row: then the whole output, empty rows included
    (out_proj(0) = its bias), equals maskattn's with empty_rows="zero"."""
    lq, s = CROSS
    mha = make_mha()
    x, memory = make_inputs(lq, s)
    attn_mask = _blocked(rng, (B * H, lq, s))
    attn_mask[1 * H + 0, 3, :] = True  # (b=1, h=0, i=3) sees nothing
    kpm = np.zeros((B, s), dtype=bool)
    kpm[0, :] = True  # batch 0 is all padding
    attn_mask, kpm = torch.from_numpy(attn_mask), torch.from_numpy(kpm)
    with torch.enable_grad():  # cross-attention: the slow path in any case
        want_out, w = mha(
            x, memory, memory, attn_mask=attn_mask, key_padding_mask=kpm, need_weights=False
        )
    assert w is None
    want_out = want_out.detach().numpy()
    got_out, _, _ = run_maskattn(mha, x, memory, ma.from_torch_mha_mask(attn_mask, kpm, num_heads=H))
    np.testing.assert_allclose(
        want_out[0], np.broadcast_to(mha.out_proj.bias.detach().numpy(), (lq, E)), rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(got_out, want_out, rtol=0, atol=OUT_ATOL)


# ---------------------------------------------------------------------------
# What is rejected
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_integer_attn_mask_is_rejected_like_torch(dtype):
    lq, s = SELF
    attn_mask = torch.zeros(lq, s, dtype=dtype)
    attn_mask[0, 1] = 1
    mha = make_mha()
    x, _ = make_inputs(lq, s)
    with torch.no_grad(), pytest.raises(AssertionError, match="only bool and floating"):
        mha(x, x, x, attn_mask=attn_mask)
    with pytest.raises(ValueError):
        ma.from_torch_mha_mask(attn_mask)
    with pytest.raises(ValueError):
        ma.from_torch_mha_mask(attn_mask.numpy())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_integer_key_padding_mask_is_rejected_like_torch(dtype):
    lq, s = SELF
    kpm = torch.zeros(B, s, dtype=dtype)
    kpm[1, -1] = 1
    mha = make_mha()
    x, _ = make_inputs(lq, s)
    with torch.no_grad(), pytest.raises(AssertionError, match="only bool and floating"):
        mha(x, x, x, key_padding_mask=kpm)
    with pytest.raises(ValueError):
        ma.from_torch_mha_mask(None, kpm)


def test_3d_attn_mask_without_num_heads_is_rejected(rng):
    lq, s = CROSS
    attn_mask = torch.from_numpy(_blocked(rng, (B * H, lq, s)))
    with pytest.raises(ValueError):
        ma.from_torch_mha_mask(attn_mask)
    with pytest.raises(ValueError):
        ma.from_torch_mha_mask(attn_mask, None, None)


def test_3d_attn_mask_first_dim_not_a_multiple_of_num_heads_is_rejected(rng):
    lq, s = CROSS
    attn_mask = torch.from_numpy(_blocked(rng, (3, lq, s)))  # 3 is not B * 2
    with pytest.raises(ValueError):
        ma.from_torch_mha_mask(attn_mask, None, num_heads=2)
