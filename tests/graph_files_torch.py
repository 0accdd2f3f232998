"""PyTorch graph files for the user graph conformance suite: TorchScript archives and torch.export programs.

Each file is written once per process (exporting takes a second or two) and copied into the test's folder.
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
from user_graph_cases import GraphCase, softmax

IMAGE = (3, 8, 8)
ROWS = (6,)


def conv_net(outputs: int, seed: int):
    """A small image network: conv, batch norm, ReLU, dropout and a linear layer of `outputs` logits."""
    import torch
    from torch import nn

    class ConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(IMAGE[0], 4, 3, padding=1)
            self.norm = nn.BatchNorm2d(4)
            self.drop = nn.Dropout(0.25)
            self.fc = nn.Linear(4 * IMAGE[1] * IMAGE[2], outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.norm(self.conv(x)))
            return self.fc(self.drop(torch.flatten(x, 1)))

    torch.manual_seed(seed)
    return ConvNet().eval()


def row_net(outputs: int, seed: int):
    """A small network on rows: linear, ReLU, linear."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(ROWS[0], 8), nn.ReLU(), nn.Linear(8, outputs)).eval()


def scripted(module) -> bytes:
    """A module as the bytes of a TorchScript archive (torch.jit.save)."""
    import io

    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def exported(module, shape: tuple[int, ...], dynamic: bool = True) -> bytes:
    """A module as the bytes of a .pt2 file (torch.export.save), with a dynamic batch dimension or not."""
    import io

    import torch

    spec = ({0: torch.export.Dim("batch")},) if dynamic else None
    program = torch.export.export(module, (torch.zeros((2,) + shape),), dynamic_shapes=spec)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def state_dict_bytes(module) -> bytes:
    """A module's state dict as torch.save writes it."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getvalue()


@functools.cache
def archive(kind: str, outputs: int) -> bytes:
    """The bytes of one graph file: kind is 'script', 'weights' (a state dict), 'export' or 'export-rows'."""
    if kind == "script":
        return scripted(conv_net(outputs, seed=0))
    if kind == "weights":
        return state_dict_bytes(conv_net(outputs, seed=1))
    if kind == "export":
        return exported(conv_net(outputs, seed=2), IMAGE)
    return exported(row_net(outputs, seed=3), ROWS)


def write(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def make_script(folder: Path, outputs: int) -> tuple[str, None]:
    return write(folder, "net.pt", archive("script", outputs)), None


def make_script_with_weights(folder: Path, outputs: int) -> tuple[str, str]:
    return (write(folder, "net.pt", archive("script", outputs)),
            write(folder, "weights.pth", archive("weights", outputs)))


def make_export(folder: Path, outputs: int) -> tuple[str, None]:
    return write(folder, "net.pt2", archive("export", outputs)), None


def make_export_rows(folder: Path, outputs: int) -> tuple[str, None]:
    return write(folder, "rows.pt2", archive("export-rows", outputs)), None


def script_reference(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    """Softmax of the TorchScript module's logits, with the state dict's weights when one is given."""
    import torch

    with warnings.catch_warnings():  # TorchScript's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(definition)
    if parameters is not None:
        module.load_state_dict(torch.load(parameters, weights_only=True))
    with torch.no_grad():
        return softmax(module.eval()(torch.from_numpy(x)).numpy())


def export_reference(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    """Softmax of the exported program's logits."""
    import torch

    with torch.no_grad():
        return softmax(torch.export.load(definition).module()(torch.from_numpy(x)).numpy())


CASES = [
    GraphCase("torchscript", "torch", "torch", IMAGE, make_script, script_reference, True, True),
    GraphCase("torchscript+state-dict", "torch", "torch", IMAGE, make_script_with_weights, script_reference, True,
              True),
    GraphCase("torch-export", "torch", "torch", IMAGE, make_export, export_reference, True, True),
    GraphCase("torch-export-rows", "torch", "torch", ROWS, make_export_rows, export_reference, True, True),
]
