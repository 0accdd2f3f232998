"""H2O's optimiser on MXNet arrays: SGD with momentum on MXNet's fused updates and ADADELTA as one compiled
update, both following torch.optim.SGD (momentum, nesterov) and torch.optim.Adadelta, after H2O's l1/l2
penalties and clipping. Shared by built-in networks (net.py) and user symbols (user.py)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepwater.backends.base import slot_arrays
from deepwater.specs import OptimizerSpec

from .runtime import load_mxnet, unfused_binding

mx = load_mxnet()


def schedule(spec: OptimizerSpec, samples: int) -> tuple[float, float]:
    """Learning rate and momentum for a step after `samples` training rows (ADADELTA: rate 1, no momentum)."""
    if spec.adaptive_rate:
        return 1.0, 0.0
    return spec.rate(samples), spec.momentum(samples)


@dataclass(frozen=True)
class Slot:
    """One trainable array, its gradient array, and whether l1/l2 apply to it."""

    weight: object
    grad: object
    penalised: bool


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
        for slot in (s for s in self.slots if s.penalised):
            grad = slot.grad
            if self.l1:
                grad += mx.nd.sign(slot.weight) * self.l1
            if self.l2:
                grad += slot.weight * self.l2

    def step(self, lr: float, momentum: float) -> None:
        """Penalties, clipping and one update of every parameter."""
        self._penalise()
        options = {"lr": lr, "wd": 0.0, "rescale_grad": 1.0, "clip_gradient": self.clip}
        if momentum == 0:
            for slot in self.slots:
                mx.nd.sgd_update(slot.weight, slot.grad, out=slot.weight, **options)
            return
        if self._mom_lr is not None and lr != self._mom_lr:
            ratio = lr / self._mom_lr
            for mom in self.moms:
                mom *= ratio
        self._mom_lr = lr
        update = mx.nd.nag_mom_update if self.nesterov else mx.nd.sgd_mom_update
        for slot, mom in zip(self.slots, self.moms):
            update(slot.weight, slot.grad, mom, out=slot.weight, momentum=momentum, **options)


class Adadelta:
    """torch.optim.Adadelta with lr 1, after H2O's penalties and clipping, as one compiled update.

    The whole step (every parameter) is a forward-only executor; its outputs (new weights, square_avg
    and acc_delta) are copied back, which costs far fewer operator calls than element-wise updates.
    """

    def __init__(self, slots: list[Slot], spec: OptimizerSpec) -> None:
        self.spec = spec
        ctx = slots[0].weight.context if slots else mx.cpu()
        self.square_avgs = [mx.nd.zeros(s.weight.shape, ctx=ctx) for s in slots]
        self.acc_deltas = [mx.nd.zeros(s.weight.shape, ctx=ctx) for s in slots]
        self._targets = [s.weight for s in slots] + self.square_avgs + self.acc_deltas
        args = {}
        for i, slot in enumerate(slots):
            args.update({f"w{i}": slot.weight, f"g{i}": slot.grad, f"sq{i}": self.square_avgs[i],
                         f"acc{i}": self.acc_deltas[i]})
        with unfused_binding():
            self._executor = self._symbol(slots).bind(ctx, args, grad_req="null") if slots else None

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of the accumulators, 'square_avg.<i>' and 'acc_delta.<i>' (torch's names)."""
        return slot_arrays({"square_avg": [a.asnumpy() for a in self.square_avgs],
                            "acc_delta": [a.asnumpy() for a in self.acc_deltas]})

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them (`samples` is unused: step() is given the schedule)."""
        for slot, targets in (("square_avg", self.square_avgs), ("acc_delta", self.acc_deltas)):
            for i, target in enumerate(targets):
                mx.nd.array(np.asarray(arrays[f"{slot}.{i}"], dtype=np.float32), ctx=target.context).copyto(target)

    def _update(self, i: int, penalised: bool):
        """Symbols of parameter i's new weight, square_avg and acc_delta, in torch's order."""
        s, rho, eps = self.spec, self.spec.rho, self.spec.epsilon
        w, g, square_avg, acc_delta = (mx.sym.var(f"{name}{i}") for name in ("w", "g", "sq", "acc"))
        if penalised and s.l1:
            g = g + mx.sym.sign(w) * s.l1
        if penalised and s.l2:
            g = g + w * s.l2
        if clip_value(s) >= 0:
            g = mx.sym.clip(g, -clip_value(s), clip_value(s))
        square_avg = square_avg * rho + mx.sym.square(g) * (1.0 - rho)
        delta = mx.sym.sqrt(acc_delta + eps) / mx.sym.sqrt(square_avg + eps) * g
        acc_delta = acc_delta * rho + mx.sym.square(delta) * (1.0 - rho)
        return w - delta, square_avg, acc_delta

    def _symbol(self, slots: list[Slot]):
        updates = [self._update(i, slot.penalised) for i, slot in enumerate(slots)]
        return mx.sym.Group([u[k] for k in range(3) for u in updates])

    def step(self, lr: float, momentum: float) -> None:
        """One update of every parameter (lr and momentum are unused: ADADELTA's rate is 1)."""
        if self._executor is None:
            return
        self._executor.forward(is_train=False)
        for out, target in zip(self._executor.outputs, self._targets):
            out.copyto(target)


def make_optimizer(slots: list[Slot], spec: OptimizerSpec) -> MomentumSGD | Adadelta:
    """ADADELTA when spec.adaptive_rate, else SGD with (Nesterov) momentum, over `slots`."""
    return (Adadelta if spec.adaptive_rate else MomentumSGD)(slots, spec)
