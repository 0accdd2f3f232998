"""Deepwater's optimisers on MXNet arrays: SGD with momentum on MXNet's fused updates, ADADELTA and Adam(W) as
one compiled update each, following torch.optim.SGD (momentum, nesterov), torch.optim.Adadelta and
torch.optim.Adam(W), after H2O's l1/l2 penalties and clipping. Shared by built-in networks (net.py) and user
symbols (user.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepwater.backends.base import slot_arrays
from deepwater.specs import OptimizerSpec

from .runtime import load_mxnet, unfused_binding

mx = load_mxnet()


def schedule(spec: OptimizerSpec, samples: int) -> tuple[float, float]:
    """Learning rate and momentum for a step after `samples` training rows (ADADELTA: rate 1; momentum is
    SGD's alone)."""
    if spec.method == "adadelta":
        return 1.0, 0.0
    return float(spec.rate(samples)), spec.momentum(samples) if spec.method == "sgd" else 0.0


@dataclass(frozen=True)
class Slot:
    """One trainable array, its gradient array, whether l1/l2 apply to it, and its rate multiplier
    (layer_lr_decay's)."""

    weight: object
    grad: object
    penalised: bool
    scale: float = 1.0


def clip_value(spec: OptimizerSpec) -> float:
    """The clipping bound, or -1 (MXNet's 'off') when clip_gradient is None or 0, as in the torch backend."""
    return float(spec.clip_gradient) if spec.clip_gradient else -1.0


class MomentumSGD:
    """torch.optim.SGD (dampening 0) on MXNet's fused updates, after H2O's penalties.

    MXNet's buffer `mom` is -lr * torch's `buf`; it is rescaled whenever the learning rate changes.
    A step with momentum 0 leaves the buffers alone and steps by the (clipped) gradient, as torch does.
    """

    def __init__(self, slots: list[Slot], spec: OptimizerSpec) -> None:
        self.slots, self.l1, self.l2, self.clip = slots, spec.l1, spec.l2, clip_value(spec)
        self.nesterov = spec.nesterov and spec.momentum(0) > 0
        self.moms = [mx.nd.zeros(s.weight.shape, ctx=s.weight.context) for s in slots]
        self._mom_lr: float | None = None  # the learning rate the buffers are scaled by
        self.frozen = [False] * len(slots)

    def freeze(self, frozen: list[bool]) -> None:
        """Leave the slots marked in `frozen` alone in the next steps (no penalty, update or momentum step)."""
        self.frozen = list(frozen)

    def arrays(self) -> dict[str, np.ndarray]:
        """The buffers as MXNet keeps them ('momentum_buffer.<i>', -lr * torch's) and that lr
        ('momentum_scale', NaN before the first step with momentum)."""
        scale = np.nan if self._mom_lr is None else self._mom_lr
        return {**slot_arrays({"momentum_buffer": [mom.asnumpy() for mom in self.moms]}),
                "momentum_scale": np.asarray(scale, dtype=np.float64)}

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them (`samples` is unused: step() is given the schedule)."""
        for i, mom in enumerate(self.moms):
            mx.nd.array(np.asarray(arrays[f"momentum_buffer.{i}"], dtype=np.float32), ctx=mom.context).copyto(mom)
        scale = float(arrays["momentum_scale"])
        self._mom_lr = None if np.isnan(scale) else scale

    def _penalise(self) -> None:
        """grad += l1 * sign(w) + l2 * w for every penalised weight."""
        for slot in (s for s, frozen in zip(self.slots, self.frozen) if s.penalised and not frozen):
            grad = slot.grad
            if self.l1:
                grad += mx.nd.sign(slot.weight) * self.l1
            if self.l2:
                grad += slot.weight * self.l2

    def step(self, lr: float, momentum: float) -> None:
        """Penalties, clipping and one update of every parameter not frozen, at lr times its scale."""
        self._penalise()
        options = {"wd": 0.0, "rescale_grad": 1.0, "clip_gradient": self.clip}
        active = [i for i, frozen in enumerate(self.frozen) if not frozen]
        if momentum == 0:
            for slot in (self.slots[i] for i in active):
                mx.nd.sgd_update(slot.weight, slot.grad, out=slot.weight, lr=lr * slot.scale, **options)
            return
        if self._mom_lr is not None and lr != self._mom_lr:
            ratio = lr / self._mom_lr
            for mom in self.moms:
                mom *= ratio
        self._mom_lr = lr
        update = mx.nd.nag_mom_update if self.nesterov else mx.nd.sgd_mom_update
        for slot, mom in ((self.slots[i], self.moms[i]) for i in active):
            update(slot.weight, slot.grad, mom, out=slot.weight, momentum=momentum, lr=lr * slot.scale, **options)


class CompiledUpdate:
    """An update rule over every parameter as one forward-only executor, after H2O's penalties and clipping:
    its outputs (the new weights, then each of the rule's per-parameter `state_names`, torch's slot names) are
    copied back, which costs far fewer operator calls than element-wise updates. A rule names the scalar
    inputs its step takes (`scalar_names`, set by `_scalars()` before each step) and writes `_rule()`."""

    state_names: tuple[str, ...] = ()
    scalar_names: tuple[str, ...] = ()

    def __init__(self, slots: list[Slot], spec: OptimizerSpec) -> None:
        self.spec, self.slots = spec, slots
        self.ctx = slots[0].weight.context if slots else mx.cpu()
        self.states = {name: [mx.nd.zeros(s.weight.shape, ctx=self.ctx) for s in slots] for name in self.state_names}
        self.scalars = {name: mx.nd.zeros((1,), ctx=self.ctx) for name in self.scalar_names}
        self.freeze([False] * len(slots))

    def freeze(self, frozen: list[bool]) -> None:
        """Bind the update over the slots not marked in `frozen` (the others, and their states, stay as they
        are)."""
        active = [i for i, f in enumerate(frozen) if not f]
        self._targets = [self.slots[i].weight for i in active] + \
            [self.states[name][i] for name in self.state_names for i in active]
        args = dict(self.scalars)
        for i in active:
            args.update({f"w{i}": self.slots[i].weight, f"g{i}": self.slots[i].grad,
                         **{f"{name}{i}": self.states[name][i] for name in self.state_names}})
        with unfused_binding():
            self._executor = self._symbol(active).bind(self.ctx, args, grad_req="null") if active else None

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of the rule's state, '<slot>.<i>' (torch's names)."""
        return slot_arrays({name: [a.asnumpy() for a in arrays] for name, arrays in self.states.items()})

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them (`samples` is unused: step() is given the schedule)."""
        for name, targets in self.states.items():
            for i, target in enumerate(targets):
                mx.nd.array(np.asarray(arrays[f"{name}.{i}"], dtype=np.float32), ctx=target.context).copyto(target)

    def _gradient(self, i: int, penalised: bool):
        """Parameter i's gradient after the l1/l2 penalties (weights only) and clipping."""
        s, w, g = self.spec, mx.sym.var(f"w{i}"), mx.sym.var(f"g{i}")
        if penalised and s.l1:
            g = g + mx.sym.sign(w) * s.l1
        if penalised and s.l2:
            g = g + w * s.l2
        if clip_value(s) >= 0:
            g = mx.sym.clip(g, -clip_value(s), clip_value(s))
        return g

    def _symbol(self, active: list[int]):
        updates = [self._rule(i, self.slots[i], self._gradient(i, self.slots[i].penalised),
                              [mx.sym.var(f"{name}{i}") for name in self.state_names])
                   for i in active]
        return mx.sym.Group([u[k] for k in range(1 + len(self.state_names)) for u in updates])

    def _rule(self, i: int, slot: Slot, g, states: list) -> tuple:
        """Symbols of parameter i's new weight and new states (in state_names' order)."""
        raise NotImplementedError

    def _scalars(self, lr: float) -> dict[str, float]:
        """The values of scalar_names for a step at rate `lr`."""
        return {}

    def step(self, lr: float, momentum: float) -> None:
        """One update of every parameter at rate `lr` (momentum is unused)."""
        if self._executor is None:
            return
        for name, value in self._scalars(lr).items():
            self.scalars[name][:] = value
        self._executor.forward(is_train=False)
        for out, target in zip(self._executor.outputs, self._targets):
            out.copyto(target)


class Adadelta(CompiledUpdate):
    """torch.optim.Adadelta with lr 1 (its rate): square_avg = rho*square_avg + (1-rho)*g^2;
    delta = sqrt(acc_delta+eps) / sqrt(square_avg+eps) * g; acc_delta = rho*acc_delta + (1-rho)*delta^2."""

    state_names = ("square_avg", "acc_delta")

    def _rule(self, i: int, slot: Slot, g, states: list) -> tuple:
        rho, eps = self.spec.rho, self.spec.epsilon
        square_avg, acc_delta = states
        square_avg = square_avg * rho + mx.sym.square(g) * (1.0 - rho)
        delta = mx.sym.sqrt(acc_delta + eps) / mx.sym.sqrt(square_avg + eps) * g
        acc_delta = acc_delta * rho + mx.sym.square(delta) * (1.0 - rho)
        step = delta if slot.scale == 1 else delta * slot.scale  # ADADELTA's rate 1, times layer_lr_decay's
        return mx.sym.var(f"w{i}") - step, square_avg, acc_delta


class Adam(CompiledUpdate):
    """torch.optim.Adam, or AdamW whose decoupled decay shrinks the penalised weights first (w *= 1 - lr*decay):
    exp_avg += (g - exp_avg) * (1-beta1); exp_avg_sq = beta2*exp_avg_sq + (1-beta2)*g^2;
    w -= lr / (1 - beta1^step) * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps). The step count
    is kept here and saved as 'step'."""

    state_names = ("exp_avg", "exp_avg_sq")
    scalar_names = ("step_size", "correction", "shrink")

    def __init__(self, slots: list[Slot], spec: OptimizerSpec) -> None:
        self.steps = 0
        super().__init__(slots, spec)

    def arrays(self) -> dict[str, np.ndarray]:
        """The moments ('exp_avg.<i>', 'exp_avg_sq.<i>') and the step count ('step')."""
        return {**super().arrays(), "step": np.asarray(self.steps, dtype=np.float32)}

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them."""
        super().load_arrays({k: v for k, v in arrays.items() if k != "step"}, samples)
        self.steps = int(arrays["step"])

    def _rule(self, i: int, slot: Slot, g, states: list) -> tuple:
        s, w = self.spec, mx.sym.var(f"w{i}")
        shape = (1,) * len(slot.weight.shape)

        def scalar(name: str):
            return mx.sym.reshape(mx.sym.var(name), shape=shape)

        exp_avg, exp_avg_sq = states
        shrink, step_size = scalar("shrink"), scalar("step_size")
        if slot.scale != 1:  # the slot's rate is lr * scale: so are its step and its decay
            shrink, step_size = 1.0 - (1.0 - shrink) * slot.scale, step_size * slot.scale
        if slot.penalised and s.method == "adamw" and s.weight_decay:
            w = mx.sym.broadcast_mul(w, shrink)
        exp_avg = exp_avg + (g - exp_avg) * (1.0 - s.beta1)
        exp_avg_sq = exp_avg_sq * s.beta2 + mx.sym.square(g) * (1.0 - s.beta2)
        denominator = mx.sym.broadcast_div(mx.sym.sqrt(exp_avg_sq), scalar("correction")) + s.epsilon
        return w - mx.sym.broadcast_mul(exp_avg / denominator, step_size), exp_avg, exp_avg_sq

    def _scalars(self, lr: float) -> dict[str, float]:
        self.steps += 1
        s = self.spec
        return {"step_size": lr / (1.0 - s.beta1 ** self.steps), "correction": (1.0 - s.beta2 ** self.steps) ** 0.5,
                "shrink": 1.0 - lr * s.weight_decay}


def make_optimizer(slots: list[Slot], spec: OptimizerSpec) -> MomentumSGD | CompiledUpdate:
    """The spec's rule over `slots`: SGD with (Nesterov) momentum, ADADELTA, Adam or AdamW."""
    if spec.method == "adadelta":
        return Adadelta(slots, spec)
    if spec.method in ("adam", "adamw"):
        return Adam(slots, spec)
    return MomentumSGD(slots, spec)
