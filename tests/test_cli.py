"""The deepwater command: train -> predict -> export -> serve round trips on a tiny csv and a tiny image folder,
`--param value` parsing, `--help` everywhere, and bad input as one line on stderr with a non-zero status."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from conftest import make_blobs, write_png
from deepwater import inference
from deepwater.cli import main, parse_params
from deepwater.errors import ParameterError

pytest.importorskip("torch")  # the commands train on torch here; they take --backend like the estimator
pytest.importorskip("onnxruntime")

TINY = ["--epochs", "1", "--hidden", "[8]", "--gpu", "false", "--quiet_mode", "true", "--backend", "torch",
        "--seed", "3", "--mini_batch_size", "16"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out.strip(), err.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"deepwater serve exited: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("deepwater serve did not answer")


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_parse_params_reads_json_python_constants_and_text():
    assert parse_params(["--epochs", "2", "--hidden", "[32,32]", "--gpu", "False", "--activation", "Tanh",
                         "--mini-batch-size", "8", "--overwrite_with_best_model"]) == {
        "epochs": 2, "hidden": [32, 32], "gpu": False, "activation": "Tanh", "mini_batch_size": 8,
        "overwrite_with_best_model": True}
    assert parse_params(["--hidden", "16", "16"]) == {"hidden": [16, 16]}
    with pytest.raises(ParameterError, match="twice"):
        parse_params(["--epochs", "1", "--epochs", "2"])


def test_csv_train_predict_export_serve_round_trip(tmp_path, capsys):
    frame = make_blobs(60, seed=2)
    frame.to_csv(tmp_path / "train.csv.gz", index=False)
    status, out, err = run(capsys, "train", tmp_path / "train.csv.gz", "--y", "label", "--x", "x1", "x2", "colour",
                           *TINY, "--out", tmp_path / "models" / "blobs")
    assert status == 0, err
    assert out == str(tmp_path / "models" / "blobs")
    status, out, err = run(capsys, "predict", tmp_path / "models" / "blobs", tmp_path / "train.csv.gz",
                           "--out", tmp_path / "preds.csv")
    assert status == 0, err
    predictions = pd.read_csv(tmp_path / "preds.csv")
    assert list(predictions.columns) == ["predict", "a", "b", "c"] and len(predictions) == 60
    assert run(capsys, "export", tmp_path / "models" / "blobs", tmp_path / "bundle")[0] == 0
    status, _, err = run(capsys, "predict", tmp_path / "bundle", tmp_path / "train.csv.gz", "--out",
                         tmp_path / "bundle_preds.csv")  # a bundle scores as the saved model
    assert status == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "bundle_preds.csv"), predictions, atol=1e-4)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "deepwater", "serve", str(tmp_path / "bundle"), "--port",
                               str(port), "--max-batch", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        wait_for(f"http://127.0.0.1:{port}/health", server)
        rows = json.loads(frame.drop(columns="label").head(5).to_json(orient="records"))
        answer = post(f"http://127.0.0.1:{port}/predict", {"rows": rows})["predictions"]
        assert [row["predict"] for row in answer] == predictions["predict"].head(5).tolist()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_image_folder_train_predict_export_serve_round_trip(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from deepwater.serving import ServeConfig, create_app

    for label, value in (("dark", 40), ("light", 215)):
        (tmp_path / "digits" / label).mkdir(parents=True)
        for i in range(8):
            write_png(tmp_path / "digits" / label / f"{i}.png", value, seed=i)
    lenet = [*TINY, "--network", "lenet", "--image_shape", "[16,16]", "--channels", "1"]
    status, _, err = run(capsys, "train", tmp_path / "digits", "--y", "label", *lenet, "--out", tmp_path / "lenet")
    assert status == 0, err
    assert run(capsys, "predict", tmp_path / "lenet", tmp_path / "digits", "--out", tmp_path / "preds.csv")[0] == 0
    predictions = pd.read_csv(tmp_path / "preds.csv")
    assert list(predictions.columns) == ["predict", "dark", "light"] and len(predictions) == 16
    assert run(capsys, "export", tmp_path / "lenet", tmp_path / "bundle")[0] == 0
    uri = str(tmp_path / "digits" / "light" / "3.png")
    expected = inference.load(tmp_path / "bundle").predict(pd.DataFrame({"uri": [uri]}))
    with TestClient(create_app(ServeConfig(str(tmp_path / "bundle"), allow_dir=str(tmp_path / "digits")))) as client:
        answer = client.post("/predict", json={"rows": [{"uri": uri}]}).json()["predictions"][0]
    assert answer["predict"] == expected["predict"][0]
    assert abs(answer["light"] - expected["light"][0]) < 1e-5


def test_info_without_a_path_lists_the_installed_backends(capsys):
    from conftest import installed_backends

    status, out, _ = run(capsys, "info")
    assert status == 0
    info = json.loads(out)
    assert info["available"] is True and list(info["backends"]) == installed_backends()
    assert all("cpu" in backend["devices"] and backend["versions"] for backend in info["backends"].values())


@pytest.mark.parametrize("argv, names", [
    (["train", "{data}", "--y", "label", "--epoch", "2", "--out", "{tmp}/m"], "epoch"),
    (["train", "{data}", "--y", "label", "--hidden", "abc", "--out", "{tmp}/m"], "hidden"),
    (["train", "{tmp}/missing.csv", "--y", "label", "--out", "{tmp}/m"], "missing.csv"),
    (["train", "{data}", "--y", "nope", "--out", "{tmp}/m", "--epochs", "1"], "nope"),
    (["train", "{tmp}", "--y", "label", "--out", "{tmp}/m"], "class/file.png"),  # a folder without class folders
    (["predict", "{tmp}/no_model", "{data}", "--out", "{tmp}/p.csv"], "no_model"),
    (["serve", "{tmp}/no_bundle"], "no_bundle"),
    (["serve", "{tmp}", "--max-batch", "0"], "max_batch"),
])
def test_bad_input_is_one_line_and_a_non_zero_status(argv, names, tmp_path, capsys):
    make_blobs(30).to_csv(tmp_path / "data.csv", index=False)
    status, out, err = run(capsys, *(a.format(data=tmp_path / "data.csv", tmp=tmp_path) for a in argv))
    assert status != 0 and not out
    assert len(err.splitlines()) == 1 and names in err and err.startswith(f"deepwater {argv[0]}: ")


@pytest.mark.parametrize("argv", [[], ["train"], ["predict", "m"], ["serve"], ["train", "d", "--y", "l"]])
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [[], ["train"], ["predict"], ["export"], ["serve"], ["info"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*command, "--help"])
    assert stop.value.code == 0 and "usage: deepwater" in capsys.readouterr().out
