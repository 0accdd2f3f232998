"""Progress output: a bar redrawn in place on a terminal, whole lines at most every few seconds in a log."""
from __future__ import annotations

import io

import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs
from deepwater import progress as progress_module
from deepwater.errors import ParameterError
from deepwater.progress import progress, progress_mode


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_forced_mode(monkeypatch):
    monkeypatch.delenv("DEEPWATER_PROGRESS", raising=False)


def test_the_mode_follows_the_stream_and_the_environment(monkeypatch):
    assert progress_mode(io.StringIO()) == "lines"
    assert progress_mode(Terminal()) == "bar"
    monkeypatch.setattr(progress_module, "_in_jupyter", lambda: True)  # a kernel's stderr is no tty
    assert progress_mode(io.StringIO()) == "bar"
    monkeypatch.setenv("DEEPWATER_PROGRESS", "lines")
    assert progress_mode(Terminal()) == "lines"
    monkeypatch.setenv("DEEPWATER_PROGRESS", "fancy")
    with pytest.raises(ParameterError, match="DEEPWATER_PROGRESS='fancy'.*'bar'.*'lines'"):
        progress_mode(Terminal())


def test_a_terminal_gets_a_bar_redrawn_in_place():
    stream = Terminal()
    with progress(total=100, desc="training", unit="rows", file=stream, mininterval=0) as bar:
        for _ in range(10):
            bar.update(10)
    assert stream.getvalue().count("\r") >= 10 and "\n" not in stream.getvalue().rstrip("\n")


def test_a_log_gets_whole_lines_and_the_last_state_at_close():
    stream = io.StringIO()
    with progress(total=1000, desc="training", unit="rows", file=stream, mininterval=3600) as bar:
        for _ in range(100):
            bar.update(10)
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 2  # the start, then nothing for an hour but the close
    assert lines[0].startswith("training:   0%") and "1000/1000" in lines[1] and lines[1].startswith("training: 100%")


def test_a_log_gets_a_line_per_interval_at_most():
    stream = io.StringIO()
    with progress(total=50, desc="d", file=stream, mininterval=0) as bar:
        for _ in range(5):
            bar.update(10)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 6
    assert [line.split("|")[2].split()[0] for line in lines] == ["0/50", "10/50", "20/50", "30/50", "40/50", "50/50"]


def test_disabled_writes_nothing():
    stream = io.StringIO()
    with progress(total=10, file=stream, disable=True) as bar:
        bar.update(10)
    assert stream.getvalue() == ""


@pytest.mark.parametrize("backend", installed_backends())
def test_training_into_a_log_prints_lines_not_frames(backend, capsys):
    model = dw.DeepWaterEstimator(backend=backend, epochs=2, hidden=[4], gpu=False, seed=1, quiet_mode=False)
    model.train(y="label", training_frame=make_blobs(60, seed=3))
    err = capsys.readouterr().err  # pytest's capture is no tty, as a CI log is not
    assert "\r" not in err
    progress_lines = [line for line in err.splitlines() if "rows" in line and "%|" in line]
    assert progress_lines and "120/120" in progress_lines[-1]
