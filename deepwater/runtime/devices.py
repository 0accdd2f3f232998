"""GPU or CPU per run: Deep Water's gpu and device_id parameters.

`device_id` lists the devices one model trains on. With gpu=True they are GPUs ('cuda:<id>'); with
gpu=False a list of more than one id asks for that many CPU replicas ('cpu:<id>'), which train exactly
as the GPUs would (the same global batch split the same way): the way to run and test the several-device
path on a machine without GPUs. One CPU id (the default [0]) is the plain single-device CPU path.

`memory_bytes(devices)` says how much memory a net built on CPU devices can take (the machine's, or its
container's limit); a GPU's memory is the framework's to tell, so it answers None there.
"""
from __future__ import annotations

from collections.abc import Sequence

from deepwater.errors import DeviceError, warn_user


def resolve_devices(backend, gpu: bool, device_id: Sequence[int]) -> list[str]:
    """The devices to train on: ['cuda:<id>', ...] for gpu=True where those GPUs exist; ['cpu'] with a warning
    where there is no GPU; ['cpu'] for gpu=False with one id, else one CPU replica per id ['cpu:<id>', ...]."""
    ids = list(device_id)
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise DeviceError(f"device_id={ids} lists device {repeated[0]} more than once; list each device once, "
                          "e.g. device_id=[0, 1].")
    if not gpu:
        return ["cpu"] if len(ids) == 1 else [f"cpu:{i}" for i in ids]
    gpus = [d for d in backend.devices() if d != "cpu"]
    if not gpus:
        warn_user(f"gpu=True but backend {backend.name!r} sees no GPU ({backend.gpu_hint()}); training on the "
                  "CPU. Pass gpu=False to silence this warning.", RuntimeWarning)
        return ["cpu"]
    missing = [i for i in ids if f"cuda:{i}" not in gpus]
    if missing:
        raise DeviceError(f"device_id={ids} asks for GPU {missing[0]}, but backend {backend.name!r} sees "
                          f"{len(gpus)} GPU(s): {gpus}. Use device_ids from 0 to {len(gpus) - 1}, or gpu=False.")
    return [f"cuda:{i}" for i in ids]


def net_device(devices: Sequence[str]) -> str:
    """The device a net is built on: the first of `devices` ('cpu' for CPU replicas)."""
    return "cpu" if devices[0].startswith("cpu") else devices[0]


def device_label(devices: Sequence[str]) -> str:
    """How a model names the devices it trained on: 'cuda:0', or 'cuda:0,cuda:1' for several."""
    return ",".join(devices)


# cgroup v2, then v1: a container's memory limit, lower than the machine's when one is set
