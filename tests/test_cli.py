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


BAD_FILES = {  # name: (the bytes of data.csv, words the error says about them)
    "empty": (b"", "empty"),
    "header only": (b"x1,x2,label\n", "no rows"),
    "ragged": (b"x1,x2,label\n1,2,a\n3,4,b,extra\n", "line 3 has 4 fields where the header has 3"),
    "ragged first row": (b"x1,x2,label\n0,1,2,a\n1,3,4,b\n", "first row has more fields than the header"),
    "random bytes": (bytes(range(256)) * 8, "binary"),
    "png": (None, "PNG image"),  # a PNG image named data.csv
}


def bad_file(tmp_path, kind: str):
    content, words = BAD_FILES[kind]
    path = tmp_path / "data.csv"
    if content is None:
        path.write_bytes(write_png(tmp_path / "image.png", 128).read_bytes())
    else:
        path.write_bytes(content)
    return path, words


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    make_blobs(30).to_csv(folder / "train.csv", index=False)
    assert main(["train", str(folder / "train.csv"), "--y", "label", *TINY, "--out", str(folder / "m")]) == 0
    return folder / "m"


@pytest.mark.parametrize("kind", list(BAD_FILES))
@pytest.mark.parametrize("command", ["train", "predict"])
def test_a_bad_data_file_is_one_line_naming_the_file(command, kind, saved_model, tmp_path, capsys):
    path, words = bad_file(tmp_path, kind)
    if command == "train":
        argv = ["train", path, "--y", "label", *TINY, "--out", tmp_path / "m"]
    else:
        argv = ["predict", saved_model, path, "--out", tmp_path / "p.csv"]
    status, out, err = run(capsys, *argv)
    assert status == 2 and not out
    assert len(err.splitlines()) == 1 and err.startswith(f"deepwater {command}: path={str(path)!r}")
    assert words in err and any(fix in err for fix in ("give", "save it", "name it"))
    assert not (tmp_path / "m").exists() and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("kind", ["png", "ragged"])
def test_the_real_command_says_a_bad_file_in_one_line_without_a_traceback(kind, tmp_path):
    path, words = bad_file(tmp_path, kind)
    done = subprocess.run([sys.executable, "-m", "deepwater", "train", str(path), "--y", "label", "--out",
                           str(tmp_path / "m")], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and not done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "data.csv" in done.stderr and words in done.stderr


@pytest.mark.parametrize("port", ["99999", "65536", "0", "-1"])
def test_serve_refuses_a_port_out_of_range_before_anything_starts(port, tmp_path, capsys, monkeypatch):
    from deepwater import cli

    monkeypatch.setattr(cli.server, "serve", lambda *a, **k: pytest.fail("the server started"))
    status, out, err = run(capsys, "serve", tmp_path / "no_bundle", "--port", port)
    assert status == 2 and not out
    assert len(err.splitlines()) == 1 and err.startswith("deepwater serve: --port")
    assert port in err and "1-65535" in err and "no_bundle" not in err  # refused before the bundle is read


def test_the_real_serve_command_refuses_port_99999(tmp_path):
    done = subprocess.run([sys.executable, "-m", "deepwater", "serve", str(tmp_path), "--port", "99999"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--port 99999" in done.stderr and "1-65535" in done.stderr


def test_parse_params_refuses_a_bare_option_that_needs_a_value():
    with pytest.raises(ParameterError, match=r"--epochs is given without a value.*a number.*--epochs 10\b"):
        parse_params(["--epochs"])
    with pytest.raises(ParameterError, match=r"--hidden .* needs one: use a list.*--hidden \[200,200\]"):
        parse_params(["--hidden", "--epochs", "2"])
    with pytest.raises(ParameterError, match=r"--activation .* needs one: use one of"):
        parse_params(["--epochs", "2", "--activation"])
    # a True/False parameter alone means True, as the help says; a name the table lacks is refused by the estimator
    assert parse_params(["--compile", "--standardize", "--epochs", "1"]) == {
        "compile": True, "standardize": True, "epochs": 1}
    assert parse_params(["--no_such_thing"]) == {"no_such_thing": True}


@pytest.mark.parametrize("argv", [["--epochs"], ["--epochs", "--hidden", "[8]"]])
def test_train_refuses_epochs_without_a_value(argv, tmp_path, capsys):
    make_blobs(30).to_csv(tmp_path / "data.csv", index=False)
    status, out, err = run(capsys, "train", tmp_path / "data.csv", "--y", "label", *argv, "--out", tmp_path / "m")
    assert status == 2 and not out and not (tmp_path / "m").exists()
    assert len(err.splitlines()) == 1 and err.startswith("deepwater train: --epochs is given without a value")
    assert "needs one: use a number" in err


def test_the_real_command_refuses_a_bare_epochs(tmp_path):
    make_blobs(30).to_csv(tmp_path / "data.csv", index=False)
    done = subprocess.run([sys.executable, "-m", "deepwater", "train", str(tmp_path / "data.csv"), "--y", "label",
                           "--epochs", "--out", str(tmp_path / "m")], capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--epochs" in done.stderr and "number" in done.stderr and not (tmp_path / "m").exists()


def test_train_refuses_an_existing_out_before_training_and_replaces_it_with_force(tmp_path, capsys, monkeypatch):
    from deepwater import cli

    make_blobs(30).to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "models" / "m"
    first = ["train", tmp_path / "data.csv", "--y", "label", *TINY, "--out", out]
    assert run(capsys, *first, "--model_id", "first")[0] == 0
    with monkeypatch.context() as patch:  # the refusal comes before the data is even read
        patch.setattr(cli, "import_file", lambda path: pytest.fail("read the data before checking --out"))
        status, out_text, err = run(capsys, *first, "--model_id", "second")
    assert status == 2 and not out_text
    assert len(err.splitlines()) == 1 and str(out) in err and "is a saved model" in err and "--force" in err
    assert cli.describe(str(out))["model_id"] == "first"
    status, out_text, err = run(capsys, *first, "--model_id", "second", "--force")
    assert status == 0, err
    assert out_text == str(out) and cli.describe(str(out))["model_id"] == "second"


def test_train_refuses_an_out_inside_a_file(tmp_path, capsys):
    make_blobs(30).to_csv(tmp_path / "data.csv", index=False)
    status, _, err = run(capsys, "train", tmp_path / "data.csv", "--y", "label", *TINY, "--out",
                         tmp_path / "data.csv" / "m")
    assert status == 2 and len(err.splitlines()) == 1 and "which is a file" in err and "--out" in err
