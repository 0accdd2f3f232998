"""The booklet's notebooks run from top to bottom (the quick start has its own test module)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, workdir: Path) -> str:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    return "\n".join(o.get("text", "") for o in outputs)


def test_similarity_search_finds_each_altered_photo_first(tmp_path):
    printed = _run("02_similarity_search.ipynb", tmp_path)
    assert "top match is the original for 11 of 11 queries" in printed


def test_ecg_autoencoder_flags_the_beats_unlike_the_normal_ones(tmp_path):
    printed = _run("ecg_anomaly.ipynb", tmp_path)
    flagged, beats = (int(n) for n in re.search(r"flagged (\d+) of (\d+) beats", printed).groups())
    assert 0 < flagged < beats / 2
    among_flagged, among_others = (int(n) for n in re.search(r"premature beats: (\d+)% of the flagged, (\d+)% of the "
                                                             r"others", printed).groups())
    assert among_flagged > 2 * among_others
