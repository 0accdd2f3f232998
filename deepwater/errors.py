"""Exceptions raised by deepwater. Each message names the parameter, the value and the fix."""
from __future__ import annotations

import difflib
import sys
import warnings
from collections.abc import Iterable

REASON_LENGTH = 300  # characters of a framework's message quoted in ours


def first_lines(error: BaseException, lines: int = 1) -> str:
    """The first `lines` non-blank lines of an exception's message joined (its type's name when it has none),
    at most REASON_LENGTH characters: a framework's reason, quoted in one of our messages."""
    found = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(found[:lines])[:REASON_LENGTH] if found else type(error).__name__


def close_matches(name: object, known: Iterable[object]) -> list[str]:
    """Up to three of `known` (as strings) that look like `name`: the 'did you mean' of an error message."""
    return difflib.get_close_matches(str(name), [str(k) for k in known], n=3)


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn at the user's own line: the first caller outside the deepwater package (what Python 3.12's
    skip_file_prefixes does), however deep inside the library the warning is raised."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "deepwater":
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level + 1)


class DeepWaterError(Exception):
    """Base class of every error deepwater raises on purpose."""


class ParameterError(DeepWaterError, ValueError):
    """A parameter has an unknown name or a value it cannot take."""


class NotFittedError(DeepWaterError, ValueError, AttributeError):
    """The model is used before train(); like scikit-learn's, a ValueError and an AttributeError."""


class FrameError(DeepWaterError, ValueError):
    """A frame, or the columns picked from it, cannot be used as asked."""


class ImageError(DeepWaterError, ValueError):
    """An image URI could not be read or decoded."""

    def __init__(self, uri: str, row: int | None, reason: str) -> None:
        where = f" (row {row})" if row is not None else ""
        super().__init__(
            f"image {uri!r}{where}: {reason}. Fix the file or URI, or pass "
            f"bad_images='skip' to skip unreadable images and count them."
        )
        self.uri = uri
        self.row = row
        self.reason = reason


class MissingDependencyError(DeepWaterError, ImportError):
    """An optional package is not installed; the message names the pip extra."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} is not installed. Install it with: pip install 'deepwater[{extra}]'")
        self.extra = extra


class DeviceError(DeepWaterError, ValueError):
    """The requested device does not exist on this machine."""


class ModelFileError(DeepWaterError, ValueError):
    """A model, graph or weights file is missing, truncated or malformed."""


class BackendError(DeepWaterError, TypeError):
    """A plugged-in backend does not implement the backend protocol (deepwater.backends.base)."""


class ReplicaError(DeepWaterError, RuntimeError):
    """A replica of a model trained on several devices or workers failed; the message holds its error."""


class DivergenceError(DeepWaterError, ArithmeticError):
    """The training loss became NaN or infinite: the weights are lost, nothing more can be learnt from them."""

    def __init__(self, loss: float, epochs: float, samples: int) -> None:
        super().__init__(f"training diverged: the training loss became {loss} by epoch {epochs:.4g} ({samples} "
                         "samples), so the network's weights are no longer numbers. Lower learning_rate (or use "
                         "adaptive_rate=True), keep clip_gradient on, standardize the inputs and a numeric response "
                         "(standardize=True), or check the frame for extreme values.")
        self.loss, self.epochs, self.samples = loss, epochs, samples
