"""Files written through a temporary file and a rename: complete or absent, and with the mode open() gives."""
from __future__ import annotations

import os

import pytest

from deepwater.files import default_file_mode, write_atomically


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_file_written_atomically_gets_the_mode_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        written = write_atomically(tmp_path / "predictions.csv", b"predict\n1\n")
        opened = tmp_path / "opened.csv"
        opened.write_bytes(b"x")
        assert default_file_mode() == 0o666 & ~umask
    finally:
        os.umask(previous)
    assert os.stat(written).st_mode & 0o777 == os.stat(opened).st_mode & 0o777 == 0o666 & ~umask
    assert written.read_bytes() == b"predict\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opened.csv", "predictions.csv"]  # no temporary left


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "out.csv", b"data")
    assert list(tmp_path.iterdir()) == []
