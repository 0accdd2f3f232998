"""Helpers shared by the benchmarks: timing side by side and writing results."""
from __future__ import annotations

import http.client
import json
import os
import platform
import socket
import subprocess
import threading
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call, and its result."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def alternate(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[tuple[float, Any]]]:
    """Run each contender `repeats` times, interleaved (A B A B ...), so machine noise hits both alike."""
    out: dict[str, list[tuple[float, Any]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            out[name].append(timed(run))
    return out


def write_result(name: str, result: dict[str, Any], folder: str = RESULTS_DIR) -> str:
    """Save a benchmark's result as JSON in `folder` (default benchmarks/results/, atomically); return the path."""
    os.makedirs(folder, exist_ok=True)
    result = {"benchmark": name, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              **result}
    path = os.path.join(folder, f"{name}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle, indent=2, default=str)
    os.replace(tmp, path)
    return path


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """An HTTP server in a subprocess on a free loopback port: `command(port)` is its command line; entered once
    its GET `health` (/health by default) answers."""

    def __init__(self, command: Callable[[int], list[str]], env: dict[str, str] | None = None,
                 health: str = "/health") -> None:
        self.port = free_port()
        self.health = health
        self.process = subprocess.Popen(command(self.port), stderr=subprocess.PIPE, text=True,
                                        env=None if env is None else {**os.environ, **env})

    def __enter__(self) -> ServerProcess:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.health}", timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.process.stderr.read()) from None
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def get(self, path: str) -> Any:
        """The JSON answer of GET `path`."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def load(port: int, rows: list[dict], clients: int, seconds: float) -> dict:
    """`clients` threads, each with a keep-alive connection, posting one row per request to /predict for `seconds`:
    requests/s, latency percentiles, errors."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    bodies = [json.dumps({"rows": [row]}).encode() for row in rows]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        i = k
        while time.perf_counter() < deadline[0]:
            body = bodies[i % len(bodies)]
            i += clients
            began = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if ok:
                latencies[k].append(time.perf_counter() - began)
            else:
                errors[k] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    done = np.array([t for per_client in latencies for t in per_client])
    return {"requests": int(len(done)), "errors": int(sum(errors)), "seconds": elapsed,
            "requests_per_s": len(done) / elapsed,
            "p50_ms": float(np.percentile(done, 50) * 1e3) if len(done) else None,
            "p99_ms": float(np.percentile(done, 99) * 1e3) if len(done) else None}
