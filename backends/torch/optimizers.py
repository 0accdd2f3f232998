"""Deepwater's training step over torch parameters: the task's loss (label smoothing included), SGD with H2O's
ramped momentum, ADADELTA, Adam or AdamW at the spec's scheduled rate, l1/l2 penalties and gradient clipping.
Shared by built-in networks and user graphs."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepwater.backends.base import slot_arrays
from deepwater.specs import OptimizerSpec, TaskSpec

from .precision import Mixed


def task_loss(task: TaskSpec, out: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The task's mean loss of the batch: cross entropy on logits (against class codes, or soft targets: (n,
    classes) probabilities, which F.cross_entropy takes as they are, label smoothing on top), a regression loss on
    (n, 1) values, or an autoencoder's reconstruction error (each row's mean squared error over its values); with
    row weights, the weighted mean."""
    reduction = "none" if weights is not None else "mean"
    if task.loss == "cross_entropy":
        loss = F.cross_entropy(out, y, reduction=reduction, label_smoothing=task.label_smoothing)
    elif task.loss == "reconstruction":
        loss = F.mse_loss(out.reshape(len(out), -1), y, reduction="none").mean(dim=1)
        loss = loss if weights is not None else loss.mean()
    else:
        out = out.squeeze(1)
        if task.loss == "quadratic":
            loss = F.mse_loss(out, y, reduction=reduction)
        elif task.loss == "absolute":
            loss = F.l1_loss(out, y, reduction=reduction)
        else:
            loss = F.huber_loss(out, y, reduction=reduction, delta=1.0)
    if weights is not None:
        loss = (loss * weights).sum() / weights.sum().clamp_min(1e-12)
    return loss


SLOTS = {"sgd": ("momentum_buffer",), "adadelta": ("square_avg", "acc_delta"), "adam": ("exp_avg", "exp_avg_sq"),
         "adamw": ("exp_avg", "exp_avg_sq")}
COUNTED = ("adadelta", "adam", "adamw")  # the rules whose torch state holds a step count
ADAM_STEP = "step"  # arrays()' entry for Adam's step count (its bias correction), one for every parameter


class Optimiser:
    """Deepwater's training step over torch parameters: the task's loss, ADADELTA, SGD with H2O's ramped
    momentum, Adam or AdamW (decaying the `penalised` weights) at the spec's scheduled rate times each
    parameter's `scales` (layer_lr_decay's, one param group per scale), l1/l2 on the `penalised` weights and
    gradient clipping, in `mixed`'s precision; frozen parameters (freeze()) take no step.

    Its buffers exist (as zeros) from the start, which steps exactly as torch's lazily made ones do, so that
    arrays() names the same arrays before and after training (checkpoints load into a fresh net).
    """

    def __init__(self, params: list[nn.Parameter], penalised: list[nn.Parameter], task: TaskSpec,
                 spec: OptimizerSpec, scales: Sequence[float] | None = None) -> None:
        self.params, self.penalised, self.task, self.spec = params, penalised, task, spec
        self.scales = list(scales) if scales is not None else [1.0] * len(params)  # each one's rate multiplier
        self.mixed = Mixed()  # float32 until the net's configure_steps() says otherwise
        self.method = spec.method
        self.optimizer = self._make_optimizer()
        self.slots = SLOTS[self.method] if self.method != "sgd" or spec.momentum_start or spec.momentum_stable \
            else ()
        for p in params:
            self.optimizer.state[p].update({slot: torch.zeros_like(p) for slot in self.slots})
            if self.method in COUNTED:
                self.optimizer.state[p]["step"] = torch.tensor(0.0)

    def _groups(self, **options) -> list[dict]:
        """Parameter groups, one per (AdamW decay or not, rate multiplier), each group's 'rate_scale' kept."""
        decayed = {id(p) for p in self.penalised} if self.method == "adamw" else set()
        keys = [(id(p) in decayed, scale) for p, scale in zip(self.params, self.scales)]
        groups = []
        for decays, scale in dict.fromkeys(keys):
            groups.append({"params": [p for p, key in zip(self.params, keys) if key == (decays, scale)],
                           "rate_scale": scale, **options,
                           **({"weight_decay": self.spec.weight_decay if decays else 0.0}
                              if self.method == "adamw" else {})})
        return groups or [{"params": [], "rate_scale": 1.0}]

    def _make_optimizer(self) -> torch.optim.Optimizer:
        s = self.spec
        if self.method == "adadelta":
            groups = self._groups()
            for group in groups:
                group["lr"] = group["rate_scale"]  # ADADELTA's rate is 1; layer_lr_decay scales it
            return torch.optim.Adadelta(groups, lr=1.0, rho=s.rho, eps=s.epsilon)
        if self.method in ("adam", "adamw"):
            rule = torch.optim.Adam if self.method == "adam" else torch.optim.AdamW
            return rule(self._groups(), lr=s.rate(0), betas=(s.beta1, s.beta2), eps=s.epsilon)
        return torch.optim.SGD(self._groups(), lr=s.rate(0), momentum=s.momentum(0),
                               nesterov=s.nesterov and s.momentum(0) > 0)

    def freeze(self, frozen: set[int]) -> None:
        """Keep the parameters whose ids are in `frozen` fixed (no gradient, so no update, penalty, decay or
        momentum step) and train the others; a parameter that trains again takes the optimiser's step count
        (one count for every parameter, as on the other backends)."""
        count = self._step_count()
        for p in self.params:
            thawed = id(p) not in frozen and not p.requires_grad
            p.requires_grad_(id(p) not in frozen)
            if thawed and count is not None:
                self.optimizer.state[p]["step"] = count.clone()

    def _step_count(self) -> torch.Tensor | None:
        """The optimiser's step count (the most any parameter has taken), or None for a rule without one."""
        if self.method not in COUNTED or not self.params:
            return None
        return max((self.optimizer.state[p]["step"] for p in self.params), key=float)

    def _update_schedule(self, samples: int) -> None:
        if self.method == "adadelta":
            return
        rate = self.spec.rate(samples)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group["rate_scale"]
            if self.method == "sgd":
                group["momentum"] = self.spec.momentum(samples)

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of the momentum buffers, ADADELTA's accumulators or Adam's moments, '<slot>.<parameter index>',
        and Adam's step count ('step')."""
        state = self.optimizer.state
        arrays = slot_arrays({slot: [state[p][slot].detach().cpu().numpy().copy() for p in self.params]
                              for slot in self.slots})
        if self.method in ("adam", "adamw") and self.params:
            arrays[ADAM_STEP] = self._step_count().detach().cpu().numpy().astype(np.float32)
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them (`samples` is unused: step() is told the rows seen)."""
        with torch.no_grad():
            for slot in self.slots:
                for i, p in enumerate(self.params):
                    self.optimizer.state[p][slot].copy_(torch.as_tensor(np.asarray(arrays[f"{slot}.{i}"])))
            if ADAM_STEP in arrays:
                for p in self.params:
                    self.optimizer.state[p]["step"] = torch.tensor(float(arrays[ADAM_STEP]))

    def step(self, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             weights: torch.Tensor | None, samples: int) -> torch.Tensor:
        """One update from the batch (x, y, weights) through `forward` (in `mixed`'s precision), `samples` rows
        into training; returns the batch's mean loss as a float32 tensor still on the device (no wait)."""
        self._update_schedule(samples)
        self.optimizer.zero_grad(set_to_none=True)
        with self.mixed.autocast():
            out = forward(x)
        loss = task_loss(self.task, out.float(), y, weights)
        self.mixed.backward(loss, self.optimizer)
        self._apply_penalties()
        if self.spec.clip_gradient:
            torch.nn.utils.clip_grad_value_(self.params, self.spec.clip_gradient)
        self.mixed.step(self.optimizer)
        return loss.detach()

    def _apply_penalties(self) -> None:
        l1, l2 = self.spec.l1, self.spec.l2
        if not (l1 or l2):
            return
        with torch.no_grad():
            for w in (w for w in self.penalised if w.grad is not None):  # frozen weights have none
                if l1:
                    w.grad.add_(torch.sign(w), alpha=l1)
                if l2:
                    w.grad.add_(w, alpha=l2)
