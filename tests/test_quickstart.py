"""The README's main job and the user-graph example, on a small subset of MNIST (the notebooks: test_notebooks.py)."""
from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_learns_digits_from_png_files(tmp_path, capsys):
    quickstart = _load_example("quickstart")
    with pytest.warns(RuntimeWarning, match="no GPU") if not _has_gpu() else contextlib.nullcontext():
        accuracy = quickstart.main(str(tmp_path), epochs=4, n_train=1000, n_test=200)
    printed = capsys.readouterr().out
    assert accuracy > 0.5  # ten classes: chance is 0.1
    assert "Test confusion matrix" in printed and f"Test accuracy: {accuracy:.4f}" in printed
    assert len(list((tmp_path / "training").rglob("*.png"))) == 1000


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()



def test_user_graphs_example_trains_every_installed_format(tmp_path, capsys):
    example = _load_example("user_graphs")
    accuracy = example.main(str(tmp_path), epochs=1, n_train=600, n_test=200)
    installed = [name for name, (module, _) in example.WRITERS.items() if importlib.util.find_spec(module)]
    assert set(installed) <= set(accuracy) and installed
    assert all(value > 0.3 for value in accuracy.values()), accuracy  # ten classes: chance is 0.1
    if "ONNX .onnx" in accuracy:  # the TorchScript LeNet's trained weights, exported and scored by onnxruntime
        assert abs(accuracy["ONNX .onnx"] - accuracy["TorchScript .pt"]) <= 0.01
    assert "test accuracy" in capsys.readouterr().out
