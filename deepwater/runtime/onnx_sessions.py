"""onnxruntime sessions for deepwater: execution providers for deepwater's device names, starting a session,
running rows through a graph. Importing this module imports neither onnx nor onnxruntime; calling its functions
does.

deepwater.inference scores exported bundles with these functions alone (onnxruntime, numpy), and the loader of
ONNX user graphs (deepwater.backends.onnx) runs its graphs on them too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from deepwater.errors import DeviceError, ModelFileError, first_lines

if TYPE_CHECKING:
    import onnxruntime as ort

CUDA = "CUDAExecutionProvider"


def has_cuda() -> bool:
    """True when this onnxruntime build has the CUDA execution provider."""
    import onnxruntime as ort

    return CUDA in ort.get_available_providers()


def execution_providers(device: str) -> list:
    """onnxruntime's providers for 'cpu' or 'cuda:<i>'."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind != "cuda" or not index.isdigit():
        raise DeviceError(f"device {device!r} is neither 'cpu' nor 'cuda:<i>'; onnxruntime cannot run on it.")
    if not has_cuda():
        raise DeviceError(f"device {device!r}: this onnxruntime build has no {CUDA}; install onnxruntime-gpu, "
                          "or pass gpu=False.")
    return [(CUDA, {"device_id": int(index)}), "CPUExecutionProvider"]


def ort_errors() -> tuple[type[Exception], ...]:
    """What onnxruntime raises when it cannot load or run a graph."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return (state.Fail, state.InvalidArgument, state.InvalidGraph, state.InvalidProtobuf, state.NotImplemented,
            state.RuntimeException, state.EPFail)


def start_session(model: bytes | str, device: str, source: str, cpu_fix: str, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime session for `model` (a serialised ModelProto or a file's path) on `device`, computing with
    `threads` CPU threads (0: onnxruntime's default, one per core).

    ModelFileError naming `source` when onnxruntime cannot load the graph; DeviceError ending in `cpu_fix`
    (how to score on the CPU instead) when the CUDA provider does not start.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings about unused initializers and the like
    options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=execution_providers(device))
    except ort_errors() as error:
        raise ModelFileError(f"onnxruntime cannot load {source}: {first_lines(error)}") from error
    if device != "cpu" and CUDA not in session.get_providers():
        raise DeviceError(f"onnxruntime could not start {CUDA} on {device!r} (CUDA or cuDNN libraries missing?); "
                          f"{cpu_fix}.")
    return session


def run_rows(session: ort.InferenceSession, input_name: str, output: str, x: np.ndarray, dtype: np.dtype,
             batch: int | None, source: str) -> np.ndarray:
    """`output` for every row of x as float32 (n, k): all rows at once, or in chunks of a graph's fixed `batch`
    size (the last chunk padded with zeros); ModelFileError naming `source` when onnxruntime fails."""
    x = np.asarray(x, dtype=dtype)
    n = len(x)
    size = batch or n
    if n == size:  # one call, nothing to pad or join (one row: what a request costs)
        return _run_chunk(session, input_name, output, x, source).astype(np.float32, copy=False)
    parts = []
    for start in range(0, n, size):
        chunk = x[start:start + size]
        rows = len(chunk)
        if rows < size:  # the last chunk of a fixed batch size: pad with zeros
            chunk = np.concatenate([chunk, np.zeros((size - rows,) + chunk.shape[1:], dtype=dtype)])
        parts.append(_run_chunk(session, input_name, output, chunk, source)[:rows])
    return np.concatenate(parts).astype(np.float32, copy=False)


def _run_chunk(session: ort.InferenceSession, input_name: str, output: str, chunk: np.ndarray,
               source: str) -> np.ndarray:
    """`output` of one network call on `chunk`, as (rows, k); ModelFileError naming `source` when onnxruntime fails
    or the output has no batch axis."""
    try:
        values = session.run([output], {input_name: chunk})[0]
    except ort_errors() as error:
        raise ModelFileError(f"onnxruntime could not run {source} on a batch of shape {chunk.shape}: "
                             f"{first_lines(error)}") from error
    if values.ndim == 0 or values.shape[0] != len(chunk):
        raise ModelFileError(f"{output!r} of {source} has shape {values.shape} for a batch of {len(chunk)} rows: "
                             "it has no batch axis, so it cannot be scored per row.")
    return values.reshape(len(chunk), -1)
