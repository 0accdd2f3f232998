"""The booklet's chapters (notebooks/05..13) and the ECG notebook run from top to bottom, the chapters on a small
subset (DEEPWATER_NOTEBOOK_ROWS), from the notebooks folder as Jupyter runs them, and print what each one shows."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ROWS = 200

# notebook -> text its outputs must hold (besides running without an error)
EXPECTED = {
    "05_quick_start.ipynb": ["cv_1_valid", "test accuracy:", "trained on cpu"],
    "06_image_classification.ipynb": ["LeNet test accuracy:", "ResNet-18: 11,1"],
    "07_user_defined_and_pretrained_networks.ipynb": ["TorchScript .pt", "symbol_lenet-cpp.json", "Egyptian cat",
                                                      "heatmaps (4, 224, 224)", "(top right quarter: True)"],
    "08_grid_search.ipynb": ["Grid ID: mnist_cartesian", "mnist_random_model_", "Ray left out",
                             "2 models, each logged in a run: True", "mnist_tracked_model_1"],
    "09_checkpoints.ipynb": ["the loaded model predicts the same: True", "resumed and finished at"],
    "10_ensembles.ipynb": ["stacked ensemble"],
    "11_deep_features_and_similarity.ipynb": ["top match is the original for 11 of 11 queries",
                                              "the nearest training digit has the same label"],
    "12_multi_gpu.ipynb": ["trained on", "largest probability difference"],
    "13_deployment.ipynb": ["rows scored without a deep learning framework", "same labels: 1.0", "model.onnx",
                            "the service agrees with the scorer: True"],
    "ecg_anomaly.ipynb": ["premature beats:"],
}


def test_every_chapter_is_listed():
    assert sorted(EXPECTED) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def _text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        parts.append(cell.source)  # markdown included: the sections the lead fills are marked there
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mnist-pngs")  # shared: the PNGs are written once


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_on_a_subset(name, data_dir, monkeypatch):
    monkeypatch.setenv("DEEPWATER_NOTEBOOK_ROWS", str(ROWS))
    monkeypatch.setenv("DEEPWATER_NOTEBOOK_DATA", str(data_dir))
    monkeypatch.setenv("DEEPWATER_NOTEBOOK_RAY", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    text = _text(notebook)
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: {expected!r} not in its outputs"
    if name == "ecg_anomaly.ipynb":
        _ecg_flags_the_beats_unlike_the_normal_ones(text)


def _ecg_flags_the_beats_unlike_the_normal_ones(text: str) -> None:
    flagged, beats = (int(n) for n in re.search(r"flagged (\d+) of (\d+) beats", text).groups())
    assert 0 < flagged < beats / 2
    among_flagged, among_others = (int(n) for n in re.search(r"premature beats: (\d+)% of the flagged, (\d+)% of the "
                                                             r"others", text).groups())
    assert among_flagged > 2 * among_others
