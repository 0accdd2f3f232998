"""deepwater.init(): start a local Ray runtime or join a Ray cluster, as h2o.init() did for H2O.

Until init() runs, deepwater trains every model in this process and does not import Ray. After it, a
grid's models (parallelism > 1) and cross-validation's fold models run as Ray tasks (model/ray_jobs.py).
"""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

from deepwater.errors import DeepWaterError, MissingDependencyError, ParameterError

UNPROBED = ("auto", "local")  # Ray's own names: an existing cluster on this machine, or a new local runtime


class ClusterError(DeepWaterError, ConnectionError):
    """The Ray cluster at the given address cannot be reached or joined."""


@dataclass(frozen=True)
class Cluster:
    """The Ray runtime deepwater sends tasks to."""

    address: str  # 'local' for a runtime started here, else the address joined
    cpus: float
    gpus: float
    managed: bool  # deepwater.init() made the connection, so deepwater.shutdown() ends it


_CLUSTER: Cluster | None = None


def connected() -> bool:
    """True after deepwater.init(), while its Ray runtime is up."""
    ray = sys.modules.get("ray")
    return _CLUSTER is not None and ray is not None and ray.is_initialized()


def current() -> Cluster:
    """The cluster deepwater.init() joined; ParameterError when it was not called."""
    if not connected():
        raise ParameterError("no Ray runtime is joined: call deepwater.init() first.")
    return _CLUSTER


def init(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
         connect_timeout_s: float = 10.0) -> Cluster:
    """Start a local Ray runtime (`num_cpus`, `num_gpus`: its size; None: this machine's) or join the cluster
    at `address` ('ray://host:10001' through Ray Client, 'host:6379' on a cluster node, 'auto'), by default
    the RAY_ADDRESS environment variable. A Ray runtime this process already runs is used as it is.

    An address where nothing answers within `connect_timeout_s` is a ClusterError; Ray's own connection
    attempts after that give up within about 30 s. Calling init() again returns the same cluster.
    """
    global _CLUSTER
    if connected():
        return _CLUSTER
    try:
        import ray
    except ImportError as error:
        raise MissingDependencyError("Ray (deepwater.init runs models as Ray tasks)", "ray") from error
    address = address or os.environ.get("RAY_ADDRESS") or None
    sized = {name: value for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)) if value is not None}
    if ray.is_initialized():
        if address or sized:
            raise ParameterError("Ray already runs in this process (ray.init() was called), and deepwater.init() "
                                 "uses it as it is: drop address, num_cpus and num_gpus, or call ray.shutdown() "
                                 "first.")
        managed = False
    elif address is None:
        ray.init(**sized, include_dashboard=False)
        managed = True
    else:
        if sized:
            raise ParameterError(f"{', '.join(sized)} size a local runtime, and address={address!r} joins a "
                                 "cluster that has its own size: drop them, or the address (and RAY_ADDRESS).")
        _join(ray, address, connect_timeout_s)
        managed = True
    resources = ray.cluster_resources()
    _CLUSTER = Cluster(address or ("local" if managed else "existing"), float(resources.get("CPU", 0.0)),
                       float(resources.get("GPU", 0.0)), managed)
    return _CLUSTER


def _join(ray, address: str, timeout: float) -> None:
    """ray.init(address), after checking that something answers there; failures as ClusterError."""
    if address not in UNPROBED:
        host, _, port = address.removeprefix("ray://").rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ParameterError(f"address={address!r} is not a Ray address; use 'ray://host:port' (Ray Client, port "
                                 "10001 by default), 'host:port' of a cluster node (6379 by default) or 'auto'.")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except OSError as error:
            raise ClusterError(f"deepwater.init(address={address!r}): nothing answers at {host}:{port} ({error}). "
                               "Start the cluster ('ray start --head' on its head node), check the address and "
                               "port, or call deepwater.init() without an address for a local runtime.") from error
    try:
        ray.init(address=address)
    except (ConnectionError, TimeoutError, RuntimeError) as error:
        raise ClusterError(f"deepwater.init(address={address!r}): Ray could not join the cluster there ({error}). "
                           "Check that it is a Ray head node of the same Ray and Python versions.") from error


def shutdown() -> None:
    """Leave the Ray runtime (stopping it when deepwater.init() started it); models train in this process
    again. Nothing happens when deepwater.init() was not called."""
    global _CLUSTER
    if _CLUSTER is not None and _CLUSTER.managed and "ray" in sys.modules:
        sys.modules["ray"].shutdown()
    _CLUSTER = None
