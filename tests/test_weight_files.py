"""network_parameters_file for built-in networks: torch state dicts and .npz archives of canonical weights."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import installed_backends, make_blobs
from deepwater import DeepWaterEstimator
from deepwater.errors import ModelFileError


def mlp(**params) -> DeepWaterEstimator:
    defaults = {"hidden": [16], "epochs": 0, "gpu": False, "quiet_mode": True, "seed": 3, "backend": "torch"}
    return DeepWaterEstimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def trained():
    pytest.importorskip("torch")
    frame = make_blobs(300, seed=0)
    return mlp(epochs=3).train(y="label", training_frame=frame), frame


def save_torch(state: dict[str, np.ndarray], path) -> str:
    import torch

    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    return str(path)


@pytest.mark.parametrize("backend", installed_backends())
@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_weights_file_scores_like_the_model_that_saved_it_on_every_backend(trained, tmp_path, backend, suffix):
    model, frame = trained
    state = model._fitted.net.get_state()
    path = tmp_path / f"mlp{suffix}"
    if suffix == ".npz":
        np.savez(path, **state)
    else:
        save_torch(state, path)
    loaded = mlp(backend=backend, network_parameters_file=str(path)).train(y="label", training_frame=frame)
    np.testing.assert_allclose(loaded.predict(frame).iloc[:, 1:].to_numpy(),
                               model.predict(frame).iloc[:, 1:].to_numpy(), atol=1e-5)


def test_replace_output_layer_keeps_everything_but_the_output(trained, tmp_path):
    model, frame = trained
    state = model._fitted.net.get_state()
    path = save_torch(state, tmp_path / "three-classes.pt")
    binary = frame[frame["label"] != "c"].copy()
    binary["label"] = binary["label"].cat.remove_unused_categories()
    with pytest.raises(ModelFileError, match=r"three-classes\.pt.*output.*replace_output_layer=True"):
        mlp(network_parameters_file=path).train(y="label", training_frame=binary)
    tuned = mlp(network_parameters_file=path, replace_output_layer=True).train(y="label", training_frame=binary)
    new = tuned._fitted.net.get_state()
    assert new["output.weight"].shape[0] == 2
    hidden = [k for k in state if not k.startswith("output.")]
    assert hidden
    for key in hidden:
        np.testing.assert_array_equal(new[key], state[key])


@pytest.mark.parametrize("backend", installed_backends())
def test_bad_weights_files_name_the_file_and_the_problem(trained, tmp_path, backend):
    """The same bad file gives the same error (ModelFileError naming the file) on every backend."""
    import torch

    _, frame = trained
    pickled = tmp_path / "code.pt"
    torch.save({"layer.weight": object()}, pickled)  # a pickled object, which weights_only refuses
    with pytest.raises(ModelFileError, match=r"code\.pt.*weights_only=True"):
        mlp(backend=backend, network_parameters_file=str(pickled)).train(y="label", training_frame=frame)
    unknown = save_torch({"nowhere.weight": np.zeros((2, 2), np.float32)}, tmp_path / "unknown.pt")
    with pytest.raises(ModelFileError, match=r"unknown\.pt.*nowhere\.weight"):
        mlp(backend=backend, network_parameters_file=unknown).train(y="label", training_frame=frame)
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, a=np.zeros(1000))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ModelFileError, match=r"truncated\.npz"):
        mlp(backend=backend, network_parameters_file=str(truncated)).train(y="label", training_frame=frame)
    other = tmp_path / "weights.h5"
    other.write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"weights\.h5.*\.npz"):
        mlp(backend=backend, network_parameters_file=str(other)).train(y="label", training_frame=frame)
