"""Building a net from a spec: a built-in network's graph on a backend, or a user graph through its loader.
A built-in network's size is checked first (memory.check_memory)."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepwater import networks
from deepwater.backends.base import Backend, Net, UserGraphLoader, configure_average, configure_steps
from deepwater.runtime.devices import device_label, net_device, resolve_devices
from deepwater.runtime.memory import check_memory, cpu_scoring_rows
from deepwater.runtime.parallel import check_parallel
from deepwater.runtime.registry import get_backend
from deepwater.runtime.user_graphs import graph_loader
from deepwater.specs import OptimizerSpec, TaskSpec, UserGraph


def draw_seed(params: dict[str, Any]) -> int:
    """The seed parameter, or a fresh random one for seed=-1."""
    return params["seed"] if params["seed"] >= 0 else int(np.random.SeedSequence().entropy % 2**32)


def build_net(network: str, graph: UserGraph | None, backend_name: str, input_shape: tuple[int, ...],
              task: TaskSpec, params: dict[str, Any], seed: int,
              rows: int | None = None) -> tuple[Backend | UserGraphLoader, str, Net]:
    """The backend (or graph loader), the devices it trains on (device_label()) and the untrained net, built on
    the first of them, for a built-in `network` or the user `graph`. A built-in network that cannot fit in memory
    is refused first (check_memory), for mini-batches of min(mini_batch_size, `rows`) rows when `rows` (the
    training frame's) is given, else of one row; `rows` also ends the run's learning-rate schedule
    (epochs * rows)."""
    backend = graph_loader(graph, backend_name) if graph is not None else get_backend(backend_name)
    devices = resolve_devices(backend, params["gpu"], params["device_id"])
    check_parallel(backend, devices, params["num_workers"], graph)
    optimizer = OptimizerSpec.from_params(params, rows)
    device = net_device(devices)
    if graph is not None:
        net = backend.load_user_network(graph, task, optimizer, device, seed)
    else:
        built = networks.build_graph(network, input_shape, task.n_outputs, params)
        check_memory(built, network, input_shape, params, optimizer, devices, rows)
        net = backend.build(built, task, optimizer, device, seed)
        if device == "cpu":
            net.scoring_rows = cpu_scoring_rows(built)
    configure_steps(net, params["precision"], params["compile"])
    configure_average(net, params.get("ema"), len(devices) > 1 or bool(params["num_workers"]))
    return backend, device_label(devices), net
