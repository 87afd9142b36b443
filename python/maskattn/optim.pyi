"""Optimizers, learning-rate schedules and checkpoints. See maskattn/optim.py."""

import os
from collections.abc import Sequence
from typing import Any

import numpy.typing as npt

from ._maskattn import Gradients, Module

_Array = Any  # numpy array, torch CPU tensor, or anything numpy.asarray() takes
_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]

class Adam:
    """torch.optim.Adam (amsgrad=False) over a module's parameters: same update, in
    float32 in torch's order of operations. weight_decay is the L2 penalty added to
    the gradient; parameters named in no_weight_decay have none (torch's second
    parameter group)."""

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        no_weight_decay: Sequence[str] = (),
    ) -> None: ...
    def step(self, grads: Gradients, lr: float | None = None) -> None:
        """One step with the gradients (a Gradients of the same module) at rate lr, or
        at the optimizer's lr when None."""
    def state_dict(self) -> dict[str, npt.NDArray[Any]]:
        """The state as numpy copies: "step" (int64, shape ()), and "exp_avg.<name>",
        "exp_avg_sq.<name>" per parameter (float32)."""
    def load_state_dict(self, state: dict[str, _Array]) -> None:
        """Restores a state_dict(): exactly its names, dtypes and shapes."""
    @property
    def lr(self) -> float:
        """The rate step() uses when given none."""
    @lr.setter
    def lr(self, value: float, /) -> None: ...
    @property
    def steps(self) -> int:
        """Steps taken (torch's state['step'])."""
    @property
    def betas(self) -> tuple[float, float]: ...
    @property
    def eps(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...

class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay, p <- p (1 - lr
    weight_decay) before the update; parameters named in no_weight_decay have none."""

    def __init__(
        self,
        module: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        no_weight_decay: Sequence[str] = (),
    ) -> None: ...

def rank1_parameter_names(module: Module) -> list[str]:
    """Names of the module's rank-1 parameters (biases, LayerNorm weights): the usual
    no_weight_decay."""

def noam(step: int, d_model: int, factor: float = 1.0, warmup: int = 4000) -> float:
    """The Transformer's rate: factor * d_model**-0.5 * min(s**-0.5, s * warmup**-1.5),
    s = max(step, 1); step counts the optimizer's steps before this one."""

def inverse_sqrt(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to peak over warmup steps, then peak * sqrt(warmup / s)."""

def warmup_constant(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to peak over warmup steps, then peak."""

def save_checkpoint(
    path: _Path,
    model: Module,
    optimizer: Adam,
    step: int = 0,
    tensors: dict[str, _Array] | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Saves a training run as one safetensors file: parameters, optimizer state and
    hyperparameters, every module's dropout stream, and the caller's step, tensors
    and metadata."""

def load_checkpoint(
    path: _Path, model: Module, optimizer: Adam
) -> tuple[int, dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Restores model and optimizer from a file save_checkpoint wrote; returns
    (step, tensors, metadata). ValueError naming the file when it does not fit."""
