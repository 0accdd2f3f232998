"""The prediction service's settings (`deepwater serve` flags), checked once when the service starts."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from deepwater.errors import ParameterError

ENVIRONMENT = "DEEPWATER_SERVE_CONFIG"  # how `--workers N` hands the settings to each worker process


@dataclass(frozen=True)
class ServeConfig:
    """What the service scores and its limits.

    bundle: the folder model.export() wrote. max_batch: the most rows gathered into one network call (1 turns
    batching off). max_wait_ms: how long the first request of a batch waits for others (0: none; requests that
    come while a batch is scored still batch together). max_rows: the most rows one
    request may carry. max_body_mb: the largest request body. allow_dir: the only folder (and its subfolders)
    whose files image rows may name as a local "uri" (None: no local file at all). max_image_pixels: the largest
    image (width x height) decoded. http_timeout: seconds to fetch an http(s) image. device, threads: as
    deepwater.inference.load(), but one CPU thread by default: a service's batches are small, and onnxruntime's
    pool of threads, spinning between calls, takes the cores the server needs to read requests.
    """

    bundle: str
    max_batch: int = 64
    max_wait_ms: float = 0.0
    max_rows: int = 10_000
    max_body_mb: float = 64.0
    allow_dir: str | None = None
    max_image_pixels: int = 40_000_000
    http_timeout: float = 10.0
    device: str = "auto"
    threads: int = 1

    def __post_init__(self) -> None:
        for name, least in (("max_batch", 1), ("max_rows", 1), ("max_image_pixels", 1), ("threads", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ParameterError(f"{name}={value!r} must be an integer >= {least}.")
        for name in ("max_wait_ms", "max_body_mb", "http_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or \
                    (name != "max_wait_ms" and value == 0):
                raise ParameterError(f"{name}={value!r} must be a number > 0{' (or 0)' * (name == 'max_wait_ms')}.")
        if self.allow_dir is not None:
            if not os.path.isdir(self.allow_dir):
                raise ParameterError(f"allow_dir={self.allow_dir!r} is not a folder; pass the folder whose images "
                                     "requests may name, or leave it out to refuse every local path.")
            object.__setattr__(self, "allow_dir", os.path.realpath(self.allow_dir))

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_environment(self) -> None:
        """Put the settings into this process's environment, for worker processes started after."""
        os.environ[ENVIRONMENT] = json.dumps(asdict(self))

    @classmethod
    def from_environment(cls) -> ServeConfig:
        """The settings to_environment() stored."""
        text = os.environ.get(ENVIRONMENT)
        if not text:
            raise ParameterError(f"${ENVIRONMENT} is not set: start the service with `deepwater serve BUNDLE`.")
        return cls(**json.loads(text))
