"""deepwater.distance() blocks computed by torch on a GPU: the engine the core asks the torch backend for."""
from __future__ import annotations

import numpy as np
import torch

from deepwater.errors import DeviceError
from deepwater.runtime.distance_engines import finish_l2
from deepwater.specs import SIMILARITIES, Prepared


def check_gpu(device: str) -> str:
    """`device` ('cuda' or 'cuda:N') when torch sees that GPU; a DeviceError naming the fix when not."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise DeviceError(f"device={device!r} but torch sees no GPU on this machine; "
                          "use device=None to compute with numpy on the CPU.")
    index = "0" if device == "cuda" else device.partition(":")[2]
    if not index.isdigit() or int(index) >= count:
        raise DeviceError(f"device={device!r} but torch sees {count} GPU(s); use 'cuda:0' to "
                          f"'cuda:{count - 1}', or device=None to compute with numpy on the CPU.")
    return device


class TorchDistanceEngine:
    """The numpy engine's blocks with torch on a GPU (or any torch device): a deepwater.specs.DistanceEngine."""

    name = "torch"

    def __init__(self, device: str) -> None:
        self.torch = torch
        self.device = torch.device(device)

    def prepare(self, values: np.ndarray, measure: str, dtype: type, shift: np.ndarray | None) -> Prepared:
        torch = self.torch
        t = torch.as_tensor(values, device=self.device)
        tdtype = torch.float32 if dtype == np.float32 else torch.float64
        if measure == "l2":
            rows = (t.double() - torch.as_tensor(shift, device=self.device)).to(tdtype)
            return Prepared(rows, (rows.double() ** 2).sum(dim=1), values)
        if measure in SIMILARITIES:
            norms = t.double().norm(dim=1)
            zero = norms == 0
            rows = t.double() / torch.where(zero, torch.ones_like(norms), norms)[:, None]
            return Prepared(rows.to(tdtype), zero)
        return Prepared(t.to(tdtype))

    def block(self, x: Prepared, y: Prepared, measure: str, out: np.ndarray) -> None:
        """Write the measure between every row of x and every row of y into `out` (of the prepared dtype)."""
        torch = self.torch
        if measure == "l1":
            out[...] = torch.cdist(x.rows, y.rows, p=1).cpu().numpy()
            return
        result = x.rows @ y.rows.T
        if measure == "l2":
            result = x.norms.to(result.dtype)[:, None] + y.norms.to(result.dtype)[None, :] - 2.0 * result
            out[...] = result.cpu().numpy()
            finish_l2(out, x.norms.cpu().numpy(), y.norms.cpu().numpy(), x.values, y.values)
            return
        result = result.clamp_(-1.0, 1.0)
        if measure == "cosine_sq":
            result = result.square_()
        out[...] = result.masked_fill_(x.norms[:, None] | y.norms[None, :], float("nan")).cpu().numpy()
