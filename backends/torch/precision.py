"""Mixed precision for torch steps: autocast to bfloat16 or float16, with a GradScaler for float16.

Weights and optimiser state stay float32 (autocast casts per operation); the loss is computed in float32 from
the autocast output. float16 scales the loss so that small gradients do not flush to zero and skips a step
whose gradients overflow (the GradScaler reads one flag from the device per step to decide).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def gpu_has_bfloat16(device: torch.device) -> bool:
    """True on a CUDA GPU that computes in bfloat16 natively (Ampere and later)."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)


class Mixed:
    """How one net's steps compute: float32, or autocast in `precision` on `device` (float16 with loss scaling)."""

    def __init__(self, precision: str = "float32", device: torch.device = torch.device("cpu")) -> None:
        self.precision = precision
        self.dtype = DTYPES.get(precision)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if precision == "float16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """A context that runs operations in the mixed dtype (none for float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Gradients of `loss`, unscaled back to the loss's own scale when float16 scaled them."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser's step, skipped under float16 when the gradients overflowed."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()


class TorchPrecision:
    """configure_steps() for torch nets (a mixin before BaseNet): every precision on every device, through the
    net's `optimiser.mixed`; a net that compiles its forward pass overrides _compile()."""

    _device: torch.device
    optimiser: object

    def precisions(self) -> tuple[str, ...]:
        return ("float32", "bfloat16", "float16")

    def gpu_has_bfloat16(self) -> bool:
        return gpu_has_bfloat16(self._device)

    def _apply_steps(self, precision: str, compile: bool) -> None:
        self.optimiser.mixed = Mixed(precision, self._device)
        self._compile(compile)

    def _compile(self, compile: bool) -> None:
        """Compile the training forward pass when asked (a TorchScript or torch.export graph is one already)."""

    def _loss_scale_state(self) -> np.ndarray | None:
        scaler = self.optimiser.mixed.scaler
        if scaler is None:
            return None
        state = scaler.state_dict()
        return np.asarray([state["scale"], state["_growth_tracker"]], dtype=np.float32)

    def _load_loss_scale(self, values: np.ndarray) -> None:
        scaler = self.optimiser.mixed.scaler
        scaler.load_state_dict({**scaler.state_dict(), "scale": float(values[0]), "_growth_tracker": int(values[1])})

    def _autocast(self) -> contextlib.AbstractContextManager:
        """The training precision's autocast, for forward passes outside a step (predictions)."""
        return self.optimiser.mixed.autocast()
