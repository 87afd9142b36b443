"""The training parts against PyTorch: ma.cross_entropy, ma.Gradients.clip_norm,
ma.optim.Adam / AdamW, the Noam schedule, and checkpoints.

What it proves (tolerances stated at each constant):
  * ma.cross_entropy equals torch.nn.CrossEntropyLoss — loss and the autograd
    gradient of the logits — for label_smoothing 0 / 0.1 / 0.6 / 1, reductions
    mean and sum, ignore_index (-100 and another value), row-strided logits
    and (B, L, V) logits with (B, L) labels; torch runs in float64, so the
    difference is maskattn's float32 rounding. All targets ignored: torch's
    mean is NaN, maskattn's loss 0 with a zero gradient (documented).
  * Adam and AdamW (with and without weight decay, with a no-decay parameter
    group for the bias) follow torch.optim over 20 steps of the same gradients
    at the Noam rates of torch's LambdaLR: parameters, exp_avg, exp_avg_sq and
    the step count agree at every step.
  * ma.optim.noam(step) is the rate torch's LambdaLR sets from the Annotated
    Transformer's rate() (with base lr 1).
  * Gradients.clip_norm equals torch.nn.utils.clip_grad_norm_ (returned norm
    and clipped gradients).
  * A run checkpointed half-way and resumed in fresh objects ends bit for bit
    where the run without the break ends; a checkpoint of another model is a
    ValueError saying so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import maskattn as ma

torch.set_num_threads(2)

# float32 logits of order 3 against torch in float64: a row's loss rounds at
# ~1e-7 relative, each probability at ~6e-8.
LOSS_RTOL = 1e-6
GRAD_ATOL = 1e-7
# Adam's update in float32, the same operations in the same order as torch's
# single-tensor path (only torch's vectorised lerp uses an FMA): parameters of
# order 1 moved ~lr per step agree to a few float32 ulps after 20 steps.
PARAM_ATOL = 5e-7  # measured: 1.2e-7 (one ulp at 1) for each variant
STATE_ATOL = 1e-6


def torch_loss(logits, targets, **kw):
    """torch's loss and the autograd gradient of its logits, in float64."""
    z = torch.tensor(np.asarray(logits, dtype=np.float64), requires_grad=True)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    loss = torch.nn.CrossEntropyLoss(**kw)(z.reshape(-1, z.shape[-1]), t.reshape(-1))
    loss.backward()
    return loss.item(), z.grad.numpy()


def random_case(rng, n, c, ignore_index=-100, ignored_every=3):
    logits = (3.0 * rng.standard_normal((n, c))).astype(np.float32)
    targets = rng.integers(0, c, n)
    targets[::ignored_every] = ignore_index
    return logits, targets


# ---- cross_entropy ----------------------------------------------------------


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.6, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch_loss_and_autograd(label_smoothing, reduction):
    rng = np.random.default_rng(1)
    logits, targets = random_case(rng, 37, 11)
    loss, dlogits = ma.cross_entropy(
        logits, targets, label_smoothing=label_smoothing, reduction=reduction
    )
    want, want_grad = torch_loss(
        logits, targets, label_smoothing=label_smoothing, reduction=reduction
    )
    assert loss == pytest.approx(want, rel=LOSS_RTOL)
    assert dlogits.dtype == np.float32 and dlogits.shape == logits.shape
    np.testing.assert_allclose(dlogits, want_grad, rtol=0, atol=GRAD_ATOL)
    # Ignored rows: zero gradient.
    assert not dlogits[targets == -100].any()


def test_cross_entropy_with_another_ignore_index_and_torch_tensors():
    rng = np.random.default_rng(2)
    logits, targets = random_case(rng, 20, 6, ignore_index=0, ignored_every=4)
    loss, dlogits = ma.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(targets), ignore_index=0, label_smoothing=0.2
    )
    want, want_grad = torch_loss(logits, targets, ignore_index=0, label_smoothing=0.2)
    assert loss == pytest.approx(want, rel=LOSS_RTOL)
    np.testing.assert_allclose(dlogits, want_grad, rtol=0, atol=GRAD_ATOL)


def test_cross_entropy_reads_strided_rows_and_classes_last_batches():
    rng = np.random.default_rng(3)
    wide = (3.0 * rng.standard_normal((12, 20))).astype(np.float32)
    logits = wide[:, :9]  # rows 20 apart, read in place
    targets = rng.integers(0, 9, 12)
    loss, dlogits = ma.cross_entropy(logits, targets)
    want, want_grad = torch_loss(logits, targets)
    assert loss == pytest.approx(want, rel=LOSS_RTOL)
    np.testing.assert_allclose(dlogits, want_grad, rtol=0, atol=GRAD_ATOL)

    # A language model's (B, L, V) logits with (B, L) labels, -100 at padding.
    lm = (3.0 * rng.standard_normal((3, 5, 13))).astype(np.float32)
    labels = rng.integers(0, 13, (3, 5))
    labels[1, 3:] = -100
    loss, dlogits = ma.cross_entropy(lm, labels, label_smoothing=0.1)
    want, want_grad = torch_loss(lm, labels, label_smoothing=0.1)
    assert loss == pytest.approx(want, rel=LOSS_RTOL)
    assert dlogits.shape == (3, 5, 13)
    np.testing.assert_allclose(dlogits, want_grad.reshape(3, 5, 13), rtol=0, atol=GRAD_ATOL)
    # Not contiguous and rank 3: copied, same numbers.
    loss_t, _ = ma.cross_entropy(np.swapaxes(lm, 0, 1), labels.T, label_smoothing=0.1)
    assert loss_t == pytest.approx(loss, rel=1e-12)


def test_cross_entropy_without_grad_and_with_every_target_ignored():
    rng = np.random.default_rng(4)
    logits, targets = random_case(rng, 8, 5)
    loss, none = ma.cross_entropy(logits, targets, grad=False)
    assert none is None and loss == ma.cross_entropy(logits, targets)[0]
    ignored = np.full(8, -100)
    loss, dlogits = ma.cross_entropy(logits, ignored, label_smoothing=0.1)
    assert loss == 0.0 and not dlogits.any()
    # torch: 0 / 0.
    assert np.isnan(torch_loss(logits, ignored)[0])


def test_cross_entropy_errors_name_the_argument():
    z = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"targets\[2\]"):
        ma.cross_entropy(z, [0, 1, 3, 2])
    with pytest.raises(ValueError, match="targets"):
        ma.cross_entropy(z, [0, 1, 2])
    with pytest.raises(ValueError, match="label_smoothing"):
        ma.cross_entropy(z, [0, 1, 2, 2], label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        ma.cross_entropy(z, [0, 1, 2, 2], reduction="none")
    with pytest.raises(ValueError, match="logits"):
        ma.cross_entropy(z.astype(np.float64), [0, 1, 2, 2])


# ---- Adam, AdamW, the Noam schedule ----------------------------------------------


def rate(step, model_size, factor, warmup):
    """The Annotated Transformer's rate()."""
    if step == 0:
        step = 1
    return factor * (model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5)))


def twin_linear(seed=0):
    """A ma.Linear and a torch.nn.Linear with the same weights."""
    torch.manual_seed(seed)
    t = torch.nn.Linear(7, 5)
    m = ma.Linear(7, 5)
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    return m, t


OPTIMIZERS = [
    ("Adam", 0.0, False),
    ("Adam", 0.05, False),
    ("AdamW", 0.01, False),
    ("AdamW", 0.3, True),  # the bias in a no-decay group
]


@pytest.mark.parametrize(("name", "weight_decay", "exempt_bias"), OPTIMIZERS)
def test_adam_and_adamw_follow_torch_over_20_steps(name, weight_decay, exempt_bias):
    m, t = twin_linear()
    betas, eps, d_model, factor, warmup = (0.9, 0.98), 1e-9, 16, 2.0, 6
    exempt = ma.optim.rank1_parameter_names(m) if exempt_bias else []
    assert exempt == (["bias"] if exempt_bias else [])
    ma_opt = getattr(ma.optim, name)(
        m, lr=1.0, betas=betas, eps=eps, weight_decay=weight_decay, no_weight_decay=exempt
    )
    groups = [{"params": [t.weight]}, {"params": [t.bias]}]
    if exempt_bias:
        groups[1]["weight_decay"] = 0.0
    torch_opt = getattr(torch.optim, name)(
        groups, lr=1.0, betas=betas, eps=eps, weight_decay=weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        torch_opt, lambda s: rate(s, d_model, factor, warmup)
    )
    grads = ma.Gradients(m)
    views = grads.state_dict()
    rng = np.random.default_rng(5)
    worst = 0.0
    for k in range(20):
        for pname, p in t.named_parameters():
            g = rng.standard_normal(p.shape).astype(np.float32)
            views[pname][...] = g
            p.grad = torch.from_numpy(g.copy())
        lr = ma.optim.noam(ma_opt.steps, d_model, factor, warmup)
        assert torch_opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-15)
        ma_opt.step(grads, lr)
        torch_opt.step()
        sched.step()
        for pname, p in t.named_parameters():
            diff = np.abs(m.state_dict()[pname] - p.detach().numpy()).max()
            worst = max(worst, diff)
            assert diff <= PARAM_ATOL, (k, pname, diff)
    state = ma_opt.state_dict()
    assert state["step"] == 20 and state["step"].dtype == np.int64 and ma_opt.steps == 20
    for pname, p in t.named_parameters():
        ts = torch_opt.state[p]
        assert int(ts["step"]) == 20
        np.testing.assert_allclose(
            state[f"exp_avg.{pname}"], ts["exp_avg"], atol=STATE_ATOL, rtol=0
        )
        np.testing.assert_allclose(
            state[f"exp_avg_sq.{pname}"], ts["exp_avg_sq"], atol=STATE_ATOL, rtol=0
        )
    print(f"{name} wd={weight_decay}: worst parameter difference {worst:.3g}")


def test_optimizer_options_state_round_trip_and_errors():
    m, _ = twin_linear()
    opt = ma.optim.AdamW(m)
    assert (opt.lr, opt.betas, opt.eps, opt.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0.01)
    assert ma.optim.Adam(m).weight_decay == 0.0
    grads = ma.Gradients(m)
    grads.state_dict()["weight"][...] = 1.0
    opt.lr = 0.01
    opt.step(grads)
    other = ma.optim.AdamW(m)
    other.load_state_dict(opt.state_dict())
    assert other.steps == 1
    np.testing.assert_array_equal(
        other.state_dict()["exp_avg.weight"], opt.state_dict()["exp_avg.weight"]
    )
    with pytest.raises(ValueError, match="grads"):
        opt.step(ma.Gradients(ma.Linear(7, 5)))
    with pytest.raises(ValueError, match="beta2"):
        ma.optim.Adam(m, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="nope"):
        ma.optim.Adam(m, no_weight_decay=["nope"])
    with pytest.raises(ValueError, match="exp_avg.bias"):
        other.load_state_dict({k: v for k, v in opt.state_dict().items() if k != "exp_avg.bias"})


def test_noam_is_the_rate_lambdalr_sets():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: rate(s, 512, 1.0, 400))
    for step in range(1000):
        assert opt.param_groups[0]["lr"] == pytest.approx(
            ma.optim.noam(step, 512, 1.0, 400), rel=1e-15
        )
        opt.step()
        sched.step()
    assert ma.optim.noam(400, 512) == pytest.approx(rate(400, 512, 1.0, 4000), rel=1e-15)
    peak = 1.0 / (512 * 400) ** 0.5
    assert ma.optim.inverse_sqrt(1234, peak, 400) == pytest.approx(
        ma.optim.noam(1234, 512, 1.0, 400), rel=1e-14
    )
    assert ma.optim.warmup_constant(5, 0.1, 10) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="warmup"):
        ma.optim.noam(1, 512, 1.0, 0)


# ---- clip_grad_norm_ ----------------------------------------------------------------


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_norm_matches_clip_grad_norm(max_norm):
    m, t = twin_linear()
    grads = ma.Gradients(m)
    rng = np.random.default_rng(6)
    for name, p in t.named_parameters():
        g = rng.standard_normal(p.shape).astype(np.float32)
        grads.state_dict()[name][...] = g
        p.grad = torch.from_numpy(g.copy())
    assert grads.norm() == pytest.approx(
        float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in t.parameters()]))),
        rel=1e-6,
    )
    total = grads.clip_norm(max_norm)
    want = torch.nn.utils.clip_grad_norm_(t.parameters(), max_norm)
    assert total == pytest.approx(float(want), rel=1e-6)
    for name, p in t.named_parameters():
        np.testing.assert_allclose(grads.state_dict()[name], p.grad.numpy(), rtol=1e-6, atol=0)
    grads.zero()
    assert grads.norm() == 0.0
    grads.state_dict()["bias"][0] = np.nan
    with pytest.raises(ValueError, match="bias"):
        grads.clip_norm(1.0)


# ---- checkpoints --------------------------------------------------------------------------


class Run:
    """Least squares with a ma.Linear: the gradient written here, AdamW at Noam's rates."""

    def __init__(self):
        self.model, _ = twin_linear(seed=3)
        self.grads = ma.Gradients(self.model)
        self.opt = ma.optim.AdamW(self.model, lr=1.0, betas=(0.9, 0.98), eps=1e-9)
        self.rng = np.random.default_rng(7)  # draws the batches
        self.losses = []

    def step(self):
        x = self.rng.standard_normal((16, 7)).astype(np.float32)
        y = (x @ np.arange(35, dtype=np.float32).reshape(7, 5) / 10).astype(np.float32)
        r = self.model(x) - y  # (16, 5)
        self.losses.append(float(0.5 * (r * r).sum() / 16))
        g = self.grads.state_dict()
        g["weight"][...] = r.T @ x / 16
        g["bias"][...] = r.sum(0) / 16
        self.grads.clip_norm(10.0)
        self.opt.step(self.grads, ma.optim.noam(self.opt.steps, 8, 4.0, 4))


def test_a_resumed_run_continues_bit_for_bit(tmp_path):
    straight = Run()
    for _ in range(12):
        straight.step()
    assert straight.losses[-1] < 0.5 * straight.losses[0]

    first = Run()
    for _ in range(6):
        first.step()
    path = tmp_path / "run.safetensors"
    ma.optim.save_checkpoint(
        path,
        first.model,
        first.opt,
        step=6,
        tensors={"losses": np.array(first.losses)},
        metadata={"rng": json.dumps(first.rng.bit_generator.state)},
    )
    # A plain safetensors reader sees the parts.
    assert ma.safetensors_metadata(path)["format"] == "maskattn-checkpoint-1"

    resumed = Run()
    resumed.model.load_state_dict({k: v * 0 for k, v in resumed.model.state_dict().items()})
    resumed.rng = np.random.default_rng(99)
    step, tensors, metadata = ma.optim.load_checkpoint(path, resumed.model, resumed.opt)
    assert step == 6 and resumed.opt.steps == 6
    resumed.rng.bit_generator.state = json.loads(metadata["rng"])
    resumed.losses = list(tensors["losses"])
    for _ in range(6):
        resumed.step()
    assert resumed.losses == straight.losses
    for name, v in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], v)
    for name, v in straight.opt.state_dict().items():
        np.testing.assert_array_equal(resumed.opt.state_dict()[name], v)

    other = ma.Linear(7, 4)
    with pytest.raises(ValueError, match="different model"):
        ma.optim.load_checkpoint(path, other, ma.optim.AdamW(other, betas=(0.9, 0.98), eps=1e-9))
    with pytest.raises(ValueError, match="AdamW"):
        ma.optim.load_checkpoint(
            path, resumed.model, ma.optim.Adam(resumed.model, betas=(0.9, 0.98), eps=1e-9)
        )
