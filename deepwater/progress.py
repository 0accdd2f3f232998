"""Progress bars, chosen in one place for the whole library.

On a terminal and in Jupyter a bar redraws in place (tqdm's auto form: a widget in Jupyter when ipywidgets is
installed). Anywhere else (CI, a log file, a pipe: the stream is not a tty) it prints a whole line at most every
LINE_INTERVAL seconds and once at the end, so that a log holds a few readable lines instead of hundreds of
carriage-return frames. DEEPWATER_PROGRESS=bar or =lines forces a mode. DataWait measures how much of a loop's
time goes to waiting for data, for the progress line.
"""
from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Iterable, Iterator, TypeVar

from tqdm.std import tqdm as _std_tqdm

from deepwater.errors import ParameterError

LINE_INTERVAL = 5.0  # seconds between two lines in a log
MODES = ("bar", "lines")
T = TypeVar("T")


def _in_jupyter() -> bool:
    """True inside a Jupyter kernel (whose stderr is no tty, yet redraws a bar in place)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_mode(stream: IO[str] | None = None) -> str:
    """'bar' (redrawn in place) on a terminal or in Jupyter, else 'lines'; DEEPWATER_PROGRESS overrides it."""
    forced = os.environ.get("DEEPWATER_PROGRESS", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ParameterError(f"DEEPWATER_PROGRESS={forced!r} is not a progress mode; set it to 'bar' (redrawn "
                                 "in place) or 'lines' (a line every few seconds), or unset it to choose by the stream.")
        return forced
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if _in_jupyter() or (isatty is not None and isatty()) else "lines"


class LineProgress(_std_tqdm):
    """A tqdm that writes its status as whole lines, at most one every `mininterval` seconds, and a last one
    when it closes; never a carriage return."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("mininterval", LINE_INTERVAL)
        kwargs.update(ascii=True, ncols=100, dynamic_ncols=False, leave=False)  # close() writes the last line
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clears a finished bar with an empty message (and a \r when told so); a log keeps its lines
            return False
        self.fp.write((msg if msg is not None else self.__str__()) + "\n")
        self.fp.flush()
        return True

    def close(self) -> None:
        if not self.disable and self.n != self.last_print_n:
            self.refresh()
        super().close()


def progress(total: float | None = None, desc: str | None = None, unit: str = "it", disable: bool = False,
             leave: bool = False, file: IO[str] | None = None, mininterval: float | None = None) -> _std_tqdm:
    """A progress bar for `total` units in the mode progress_mode() picks for `file` (default: sys.stderr).

    Used as tqdm is: `with progress(total=n, desc="training") as bar: bar.update(k)`. `mininterval` is the
    least time between two redraws or lines (tqdm's 0.1 s for a bar, LINE_INTERVAL for lines).
    """
    file = sys.stderr if file is None else file
    options: dict[str, Any] = dict(total=total, desc=desc, unit=unit, disable=disable, leave=leave, file=file)
    if mininterval is not None:
        options["mininterval"] = mininterval
    if disable:
        return _std_tqdm(**options)  # draws nothing: no need to pick a form (or import Jupyter's)
    if progress_mode(file) == "lines":
        return LineProgress(**options)
    from tqdm.auto import tqdm

    return tqdm(**options)


class DataWait:
    """The share of a loop's time spent waiting for its next item (a training step waiting for its batch to be
    decoded), shown on the progress line as `data_wait`: near 0% the network is the bottleneck, a large share
    says the step waits for data (decoding, downloads)."""

    def __init__(self) -> None:
        self.waited = 0.0
        self.began = time.perf_counter()

    def timed(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, counting the time each one takes to come."""
        iterator = iter(items)
        while True:
            asked = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            self.waited += time.perf_counter() - asked
            yield item

    def share(self) -> float:
        """Seconds waited over seconds since this clock began (0 to 1)."""
        return min(self.waited / max(time.perf_counter() - self.began, 1e-9), 1.0)

    def postfix(self) -> dict[str, str]:
        """The progress line's field: {'data_wait': '35%'}."""
        return {"data_wait": f"{self.share():.0%}"}
