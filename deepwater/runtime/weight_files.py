"""Weights files for built-in networks: network_parameters_file with network='lenet', 'resnet18', ...

A weights file holds the network's canonical state, '<layer>.<param>' -> array in PyTorch layouts (what
get_state() returns on every backend), as a PyTorch state dict (.pt, .pth, .bin: read with
torch.load(weights_only=True), which refuses pickled code) or a numpy archive (.npz: np.load with
allow_pickle=False). replace_output_layer=True leaves out the file's 'output.*' weights, so a network
trained on other classes starts fine-tuning from everything but its last layer.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping

import numpy as np

from deepwater.errors import MissingDependencyError, ModelFileError
from deepwater.specs import misfit

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
OUTPUT_LAYER = "output"
_DROPPED = ("num_batches_tracked",)  # torch's batch-norm counters, which no backend keeps


def read_torch_state(path: str | os.PathLike, hint: str = "save it with torch.save(module.state_dict(), path)"
                     ) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state-dict file as float32 numpy arrays (torch.load with weights_only=True)."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(f"PyTorch (to read the weights file {os.fspath(path)!r})", "torch") from None
    try:
        loaded = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        # torch's own message may suggest weights_only=False, which would run pickled code: not repeated here
        raise ModelFileError(f"weights file {os.fspath(path)!r} cannot be read by torch.load(weights_only=True) "
                             f"({type(error).__name__}); it is truncated, corrupt or not a PyTorch state dict: "
                             f"{hint}.") from error
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelFileError(f"weights file {os.fspath(path)!r} does not hold a state dict (name -> tensor); "
                             f"it holds {type(loaded).__name__}: {hint}.")
    return {str(k): v.detach().to(torch.float32).numpy() for k, v in loaded.items()
            if str(k).rpartition(".")[2] not in _DROPPED}


def read_npz_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a .npz archive (np.savez), read without pickle."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as archive:
            return {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ModelFileError(f"weights file {os.fspath(path)!r} is not a readable numpy .npz archive of arrays "
                             f"({type(error).__name__}: {str(error)[:120]}); save it with np.savez(path, "
                             "**net_state).") from error


def read_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A weights file's canonical state, by its suffix: a torch state dict or a .npz archive."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"network_parameters_file={path!r}: no such file; pass a weights file or leave it None.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        return read_npz_state(path)
    if suffix in TORCH_SUFFIXES:
        return read_torch_state(path)
    raise ModelFileError(f"network_parameters_file={path!r}: a built-in network reads weights from a PyTorch state "
                         f"dict ({', '.join(TORCH_SUFFIXES)}) or a numpy archive (.npz), "
                         f"not {suffix or 'no suffix'!r}.")


def load_network_weights(net, path: str | os.PathLike, replace_output_layer: bool = False) -> None:
    """Load a weights file into a built-in network's Net; with replace_output_layer, keep the Net's own output."""
    path = os.fspath(path)
    given = read_state(path)
    current = net.get_state()
    expected = {name: value.shape for name, value in current.items()}
    if replace_output_layer:  # the net's own new output layer stays
        given = {k: v for k, v in given.items() if k.partition(".")[0] != OUTPUT_LAYER}
        expected = {k: shape for k, shape in expected.items() if k.partition(".")[0] != OUTPUT_LAYER}
    problems = misfit(expected, given)
    if problems:
        output_hint = ""
        if any(k.partition(".")[0] == OUTPUT_LAYER and k in expected and given[k].shape != expected[k] for k in given):
            output_hint = (" The output layer has another number of classes: pass replace_output_layer=True to "
                           "start a new output layer for this response.")
        raise ModelFileError(f"network_parameters_file={path!r} does not fit this network: {problems}.{output_hint}")
    net.set_state({**current, **given})
