"""The package installs as one `deepwater` namespace and imports no framework up front."""
from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# The frameworks and the optional extras' packages: `import deepwater` loads none of them, so that a minimal
# install (`.[torch,datasets]`, what `make quickstart` uses) imports and trains without them.
OPTIONAL = ('torch', 'tensorflow', 'mxnet', 'matplotlib', 'numba', 'fastapi', 'uvicorn', 'ray', 'skops', 'onnxruntime',
            'mlflow', 'fsspec', 's3fs', 'jinja2', 'orjson')


def test_import_deepwater_imports_no_framework_and_no_extra():
    code = f"import sys, deepwater; print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_wheel_maps_top_level_folders_into_the_deepwater_namespace(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("deepwater-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "deepwater/backends/torch/backend.py" in names
    assert "deepwater/model/estimator.py" in names  # the core's layers are packages too
    assert "deepwater/networks/lenet.py" in names
    assert "deepwater/models_zoo/__init__.py" in names
    assert "deepwater/models_zoo/imagenet_classes.txt" in names  # package data: the zoo's labels
    assert not any(n.startswith(("backends/", "networks/", "models_zoo/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    declared = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "deepwater.backends.torch.backend:TorchBackend" in declared
    assert "deepwater = deepwater.cli:main" in declared  # the deepwater command


@pytest.mark.parametrize("path, names", [
    ("deepwater.inference", ["load", "read_bundle", "Scorer"]),
    ("deepwater.sklearn", ["DeepWaterClassifier", "DeepWaterRegressor"]),
    ("deepwater.serving", ["ServeConfig", "create_app", "serve"]),
    ("deepwater.plots", ["scoring_history_plot", "curve_plot", "confusion_plot", "grid_plot"]),
    ("deepwater.datasets", ["mnist", "mnist_images"]),
    ("deepwater.models_zoo", ["list_models", "load"]),
    ("deepwater.backends.testing", ["check_backend"]),
])
def test_public_modules_keep_their_paths(path, names):
    """Users import these by path: the layers moved the code inside, not the paths."""
    module = importlib.import_module(path)
    assert [name for name in names if not hasattr(module, name)] == []


def test_the_public_face():
    import deepwater as dw

    assert dw.H2OAutoEncoderEstimator is dw.AutoEncoderEstimator
    assert dw.AutoEncoderEstimator().autoencoder is True
    assert {"BackendError", "ReplicaError", "AutoEncoderEstimator"} <= set(dw.__all__)
    assert "accessor" not in dw.__all__
    assert dw.__version__ == metadata.version("deepwater")  # one source: pyproject.toml
