"""Optimizers, learning-rate schedules and checkpoints for training.

``Adam`` and ``AdamW`` are torch.optim's, over a module's parameters and a
:class:`maskattn.Gradients`; the schedules give the rate of each step from the
steps taken before it (LambdaLR's counter); a checkpoint is one safetensors
file that resumes a run bit for bit.

    >>> import maskattn as ma
    >>> model = ma.Linear(8, 4)
    >>> grads = ma.Gradients(model)
    >>> opt = ma.optim.AdamW(model, betas=(0.9, 0.98), eps=1e-9)
    >>> # ... a backward pass fills grads ...
    >>> opt.step(grads, ma.optim.noam(opt.steps, d_model=8, warmup=400))
"""

from __future__ import annotations

from ._maskattn import optim as _ext

Adam = _ext.Adam
AdamW = _ext.AdamW
inverse_sqrt = _ext.inverse_sqrt
load_checkpoint = _ext.load_checkpoint
noam = _ext.noam
rank1_parameter_names = _ext.rank1_parameter_names
save_checkpoint = _ext.save_checkpoint
warmup_constant = _ext.warmup_constant

__all__ = [
    "Adam",
    "AdamW",
    "inverse_sqrt",
    "load_checkpoint",
    "noam",
    "rank1_parameter_names",
    "save_checkpoint",
    "warmup_constant",
]
