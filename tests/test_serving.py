"""deepwater.serving: the prediction service over a bundle (FastAPI's TestClient, and a real uvicorn server on a
free loopback port): its predictions are the scorer's, concurrent requests share network calls, and every bad
request is a 4xx naming the field, never a traceback."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_blobs, outcome, write_png

pytest.importorskip("torch")  # the bundles are exported through torch; the service itself never imports it
pytest.importorskip("onnxruntime")
fastapi_testclient = pytest.importorskip("fastapi.testclient")
uvicorn = pytest.importorskip("uvicorn")
httpx2 = pytest.importorskip("httpx2")

import deepwater as dw  # noqa: E402
from deepwater import inference  # noqa: E402
from deepwater.data.encoders import Response  # noqa: E402
from deepwater.errors import ParameterError  # noqa: E402
from deepwater.serving import ServeConfig, create_app  # noqa: E402
from deepwater.serving.batcher import MicroBatcher  # noqa: E402

TestClient = fastapi_testclient.TestClient
CLOSE = 1e-5


def train(frame: pd.DataFrame, x: list[str] | None, **params) -> dw.DeepWaterEstimator:
    settings = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 5, "backend": "torch",
                "mini_batch_size": 16, **params}
    return dw.DeepWaterEstimator(**settings).train(x=x, y="label", training_frame=frame)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory) -> tuple[str, pd.DataFrame]:
    """A tiny MLP classifier's bundle, and rows to score."""
    frame = make_blobs(90, seed=4)
    path = train(frame, None).export(tmp_path_factory.mktemp("mlp") / "bundle")
    return path, frame.drop(columns="label").head(12)


@pytest.fixture(scope="module")
def lenet(tmp_path_factory) -> tuple[str, pd.DataFrame]:
    """A tiny LeNet-on-PNG bundle, and a frame of its images (their folder is the service's allow_dir)."""
    folder = tmp_path_factory.mktemp("pngs")
    uris = [str(write_png(folder / f"img{i:02d}.png", 40 if i % 2 else 215, seed=i)) for i in range(16)]
    frame = pd.DataFrame({"uri": uris, "label": pd.Categorical(["light" if i % 2 else "dark" for i in range(16)])})
    model = train(frame, ["uri"], network="lenet", problem_type="image", image_shape=[16, 16], channels=1,
                  mini_batch_size=8)
    return model.export(tmp_path_factory.mktemp("lenet") / "bundle"), frame[["uri"]]


def json_rows(frame: pd.DataFrame) -> list[dict]:
    """The frame's rows as a client sends them: numbers, text, null for missing."""
    return json.loads(frame.astype(object).where(frame.notna(), None).to_json(orient="records"))


def assert_same(predictions: list[dict], expected: pd.DataFrame) -> None:
    got = pd.DataFrame(predictions)
    assert list(got.columns) == list(expected.columns)
    assert got["predict"].tolist() == expected["predict"].astype(object).tolist()
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(float), expected.iloc[:, 1:].to_numpy(float), atol=CLOSE)


def refused(response, status: int, field: str) -> str:
    """The error message of a refused request, checked: the status, JSON naming the field, no traceback."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and field in body["error"]
    assert "Traceback" not in response.text
    return body["error"]


@pytest.mark.parametrize("response, output", [
    (Response("y", "classification", ["no", "yes"]), [[0.7, 0.3], [0.2, 0.8], [np.nan, np.nan]]),
    (Response("y", "classification", [3, 1, 2]), [[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]),
    (Response("y", "regression", mean=100.0, scale=4.0), [[0.5], [np.nan], [-1.0]]),
])
def test_records_are_the_rows_of_the_predictions_frame(response, output):
    output = np.array(output, dtype=np.float32)
    frame = response.predictions(output, np.arange(len(output)), pd.RangeIndex(len(output)), threshold=0.25)
    expected = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert response.records(output, threshold=0.25) == expected


@pytest.fixture(scope="module")
def mlp_client(mlp):
    with TestClient(create_app(ServeConfig(mlp[0]))) as client:
        yield client


@pytest.fixture(scope="module")
def lenet_client(lenet):
    with TestClient(create_app(ServeConfig(lenet[0], allow_dir=str(Path(lenet[1]["uri"][0]).parent)))) as client:
        yield client


# --------------------------------------------------------------------------- answers

def test_predictions_equal_the_scorer_on_the_same_rows(mlp, mlp_client):
    path, frame = mlp
    frame = frame.copy()
    frame.loc[frame.index[::4], "x1"] = np.nan  # a missing value: the training mean, as in predict()
    response = mlp_client.post("/predict", json={"rows": json_rows(frame)})
    assert response.status_code == 200, response.text
    assert_same(response.json()["predictions"], inference.load(path).predict(frame))


def test_rows_read_whole_or_cell_by_cell_give_the_scorers_answers(mlp, mlp_client):
    """Plain numbers are read as one array; a body holding a number beyond float32 (1e300, whose row has no
    prediction, as in predict()), or large enough for a worker thread, goes the longer way: the same answers."""
    path, frame = mlp
    frame = frame.assign(x2=frame["x2"].round())  # whole numbers, sent as JSON integers
    expected = inference.load(path).predict(frame)
    rows = [dict(row, x2=int(row["x2"])) for row in json_rows(frame)]
    for body in ({"rows": rows}, {"rows": rows * 400}):  # about 1 KB, read on the event loop; about 300 KB
        response = mlp_client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        assert_same(response.json()["predictions"][:len(rows)], expected)
    beyond = mlp_client.post("/predict", json={"rows": [dict(rows[1], x1=1e300), rows[2]]})
    assert beyond.status_code == 200, beyond.text
    first, second = beyond.json()["predictions"]
    assert set(first.values()) == {None}
    assert_same([second], expected.iloc[[2]])


def test_small_and_large_batches_score_alike_on_the_event_loop_or_a_thread(mlp):
    """The batcher scores a small batch on the event loop and a large one on its worker thread: the same outputs."""
    scorer = inference.load(mlp[0])
    x = scorer.encode(mlp[1])

    async def score(inline_values: int) -> list[np.ndarray]:
        batcher = MicroBatcher(scorer.outputs, max_batch=64, max_wait=0.01, inline_values=inline_values)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.score(x[i:i + 3]) for i in range(0, len(x), 3)))
        finally:
            await batcher.stop()

    on_loop, on_thread = asyncio.run(score(x.size)), asyncio.run(score(0))
    for a, b in zip(on_loop, on_thread):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.concatenate(on_loop), scorer.outputs(x), atol=CLOSE)


def test_image_rows_by_base64_by_uri_and_by_upload_equal_the_scorer(lenet, lenet_client):
    path, frame = lenet
    expected = inference.load(path).predict(frame)
    data = [Path(uri).read_bytes() for uri in frame["uri"]]
    by_uri = lenet_client.post("/predict", json={"rows": [{"uri": uri} for uri in frame["uri"]]})
    encoded = [base64.b64encode(d).decode() for d in data]
    encoded[0] = "data:image/png;base64," + encoded[0]  # a data URL is fine too
    by_base64 = lenet_client.post("/predict", json={"rows": [{"image": text} for text in encoded]})
    uploads = lenet_client.post("/predict/images", files=[("images", (f"{i}.png", d, "image/png"))
                                                          for i, d in enumerate(data)])
    for response in (by_uri, by_base64, uploads):
        assert response.status_code == 200, response.text
        assert_same(response.json()["predictions"], expected)


def test_health_model_and_docs(mlp_client, lenet_client):
    assert mlp_client.get("/health").json() == {"status": "ok"}
    model = mlp_client.get("/model").json()
    assert [c["name"] for c in model["inputs"]["columns"]] == ["x1", "x2", "colour"]
    assert model["response"]["classes"] == ["a", "b", "c"]
    assert model["versions"]["onnxruntime"] and model["limits"]["max_rows"] == 10_000
    assert lenet_client.get("/model").json()["inputs"]["shape"] == {"height": 16, "width": 16, "channels": 1,
                                                                   "resize": "stretch"}
    assert "/predict" in mlp_client.get("/openapi.json").json()["paths"]
    assert mlp_client.get("/docs").status_code == 200


# --------------------------------------------------------------------------- bad requests

def test_a_missing_column_is_named(mlp, mlp_client):
    rows = json_rows(mlp[1].head(3))
    del rows[2]["x2"]
    assert "missing" in refused(mlp_client.post("/predict", json={"rows": rows}), 422, "rows[2].x2")


def test_a_string_where_a_number_belongs_is_named(mlp, mlp_client):
    rows = json_rows(mlp[1].head(3))
    rows[1]["x1"] = "twelve"
    assert "'twelve'" in refused(mlp_client.post("/predict", json={"rows": rows}), 422, "rows[1].x1")


def test_a_corrupt_base64_image_and_bytes_that_are_no_image(lenet_client):
    response = lenet_client.post("/predict", json={"rows": [{"image": "iVBORw0KGgo***not base64***"}]})
    assert "base64" in refused(response, 422, "rows[0].image")
    junk = base64.b64encode(b"\x89PNG\r\n\x1a\n but truncated").decode()
    assert "not a readable image" in refused(lenet_client.post("/predict", json={"rows": [{"image": junk}]}), 422,
                                             "rows[0].image")
    upload = lenet_client.post("/predict/images", files=[("images", ("x.png", b"garbage", "image/png"))])
    assert refused(upload, 422, "images[0] (x.png)")
    both = {"image": junk, "uri": "https://example.invalid/a.png"}
    assert "exactly one" in refused(lenet_client.post("/predict", json={"rows": [both]}), 422, "rows[0]")


def test_100000_rows_are_refused(mlp, mlp_client):
    row = json_rows(mlp[1].head(1))[0]
    assert "10,000" in refused(mlp_client.post("/predict", json={"rows": [row] * 100_000}), 413, "rows")


def test_a_body_over_the_size_limit_is_413(mlp):
    with TestClient(create_app(ServeConfig(mlp[0], max_body_mb=0.01))) as client:
        rows = json_rows(mlp[1].head(1)) * 400  # about 20 KB
        assert refused(client.post("/predict", json={"rows": rows}), 413, "body")
        assert client.post("/predict", json={"rows": rows[:2]}).status_code == 200


def test_bodies_that_are_no_rows(mlp_client):
    assert refused(mlp_client.post("/predict", content=b"{not json"), 422, "body")
    assert refused(mlp_client.post("/predict", json={"row": []}), 422, "rows")
    assert refused(mlp_client.post("/predict", json={"rows": [1, 2]}), 422, "rows[0]")
    assert refused(mlp_client.post("/predict", json={"rows": [{"x1": [1], "x2": 1, "colour": "red"}]}), 422,
                   "rows[0].x1")
    assert refused(mlp_client.post("/predict/images", files=[("images", ("a.png", b"x", "image/png"))]), 422,
                   "images")  # a dataset model takes no images
    assert refused(mlp_client.post("/predict", json={"rows": [{"x1": 1, "x2": 10**400, "colour": "red"}]}), 422,
                   "rows[0].x2")
    assert refused(mlp_client.post("/predict", json={"rows": [{"x1": 1, "x2": 2, "colour": {"a": 1}}]}), 422,
                   "rows[0].colour")


def test_http_image_uris_are_fetched_and_a_failed_fetch_is_named(lenet, lenet_client):
    """An http URL (a server on 127.0.0.1 started here) scores as the file itself; a 404 is a 422 on the field."""
    import http.server

    path, frame = lenet
    folder = Path(frame["uri"][0]).parent
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        rows = [{"uri": f"{base}/{Path(uri).name}"} for uri in frame["uri"]]
        response = lenet_client.post("/predict", json={"rows": rows})
        assert response.status_code == 200, response.text
        assert_same(response.json()["predictions"], inference.load(path).predict(frame))
        missing = lenet_client.post("/predict", json={"rows": [{"uri": f"{base}/no-such.png"}]})
        assert "HTTP 404" in refused(missing, 422, "rows[0].uri")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_uri_to_etc_passwd_is_refused(lenet, lenet_client, mlp, tmp_path):
    assert "outside" in refused(lenet_client.post("/predict", json={"rows": [{"uri": "/etc/passwd"}]}), 403,
                                "rows[0].uri")
    escape = str(Path(lenet[1]["uri"][0]).parent / ".." / ".." / ".." / "etc" / "passwd")
    refused(lenet_client.post("/predict", json={"rows": [{"uri": escape}]}), 403, "rows[0].uri")
    refused(lenet_client.post("/predict", json={"rows": [{"uri": "file:///etc/passwd"}]}), 403, "rows[0].uri")
    with TestClient(create_app(ServeConfig(lenet[0]))) as no_files:  # without --allow-dir: no local path at all
        response = no_files.post("/predict", json={"rows": [{"uri": lenet[1]["uri"][0]}]})
        assert "--allow-dir" in refused(response, 403, "rows[0].uri")


def test_a_symbolic_link_cannot_escape_the_allowed_folder(lenet, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    os.symlink("/etc/passwd", allowed / "innocent.png")
    os.symlink(lenet[1]["uri"][0], allowed / "outside.png")  # an image, but outside the folder
    with TestClient(create_app(ServeConfig(lenet[0], allow_dir=str(allowed)))) as client:
        for name in ("innocent.png", "outside.png"):
            refused(client.post("/predict", json={"rows": [{"uri": str(allowed / name)}]}), 403, "rows[0].uri")


def test_an_unexpected_failure_is_a_500_without_traceback(mlp):
    app = create_app(ServeConfig(mlp[0]))

    def broken(x):
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.batcher._score = broken
        response = client.post("/predict", json={"rows": json_rows(mlp[1].head(1))})
        assert response.status_code == 500
        assert "secret" not in response.text and "Traceback" not in response.text
        assert response.json()["error"]


def test_bad_settings_are_parameter_errors(mlp, tmp_path):
    for settings in ({"max_batch": 0}, {"max_rows": -1}, {"max_body_mb": 0}, {"allow_dir": str(tmp_path / "no")}):
        with pytest.raises(ParameterError, match=next(iter(settings))):
            ServeConfig(mlp[0], **settings)


# --------------------------------------------------------------------------- a real server

class Server:
    """uvicorn serving `app` on a free loopback port, on a thread."""

    def __init__(self, app) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(mlp):
    with Server(create_app(ServeConfig(mlp[0], max_batch=64, max_wait_ms=50))) as running:
        yield running


def test_concurrent_requests_are_batched_into_fewer_network_calls(mlp, server):
    batcher = server.app.state.batcher
    calls, requests = batcher.calls, batcher.requests
    rows = json_rows(mlp[1])
    expected = inference.load(mlp[0]).predict(mlp[1])
    with httpx2.Client(base_url=server.url, timeout=30) as client, ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: client.post("/predict", json={"rows": [rows[i]]}), range(12)))
    for i, answer in enumerate(answers):  # each request gets its own row's answer back
        assert answer.status_code == 200
        assert_same(answer.json()["predictions"], expected.iloc[[i]])
    assert batcher.requests - requests == 12
    assert batcher.calls - calls < 12


def test_batching_off_scores_each_request_alone(mlp):
    with Server(create_app(ServeConfig(mlp[0], max_batch=1))) as running:
        rows = json_rows(mlp[1])
        with httpx2.Client(base_url=running.url, timeout=30) as client, ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda i: client.post("/predict", json={"rows": rows[i:i + 2]}), range(6)))
        assert all(a.status_code == 200 for a in answers)
        assert running.app.state.batcher.calls == 6


def test_a_client_disconnecting_mid_request_does_not_hurt_the_server(mlp, server):
    body = json.dumps({"rows": json_rows(mlp[1])}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as half:  # half a body, then gone
        half.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2])
    with socket.create_connection(("127.0.0.1", server.port)) as impatient:  # a whole request, gone before the answer
        impatient.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(0.2)
    with httpx2.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        answer = client.post("/predict", json={"rows": json_rows(mlp[1].head(2))})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2


def test_the_service_imports_no_deep_learning_framework(mlp):
    code = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "tensorflow", "mxnet", "keras"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Refuse())
from fastapi.testclient import TestClient
from deepwater.serving import ServeConfig, create_app
with TestClient(create_app(ServeConfig({mlp[0]!r}))) as client:
    answer = client.post("/predict", json={{"rows": [{{"x1": 0.5, "x2": 50.0, "colour": "red"}}]}})
print(answer.status_code, sorted(m for m in sys.modules if m.partition(".")[0] in ("torch", "tensorflow", "mxnet")))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["200", "[]"]


# --------------------------------------------------------------------------- files that are no regular files

@pytest.fixture
def special_files(lenet, tmp_path):
    """(client, FIFO, {uri: what it is}) of a service whose allow_dir holds a FIFO and a folder named like images,
    and an image."""
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "ok.png").write_bytes(Path(lenet[1]["uri"][0]).read_bytes())
    uris = {str(tmp_path / "pipe.png"): "a FIFO", (tmp_path / "pipe.png").as_uri(): "a FIFO", "pipe.png": "a FIFO",
            str(tmp_path / "folder.png"): "a directory"}
    with TestClient(create_app(ServeConfig(lenet[0], allow_dir=str(tmp_path)))) as client:
        yield client, tmp_path / "pipe.png", uris


def test_a_fifo_or_a_folder_uri_is_a_422_at_once(special_files):
    client, fifo, uris = special_files
    for uri, kind in uris.items():
        good = {"uri": str(Path(fifo).parent / "ok.png")}
        response = outcome(partial(client.post, "/predict", json={"rows": [good, {"uri": uri}]}), fifo)
        message = refused(response, 422, "rows[1].uri")
        assert repr(uri) in message and f"not a regular file ({kind})" in message
    mine = {"uri": str(Path(fifo).parent / "ok.png")}  # the service still reads the folder's images
    assert outcome(lambda: client.post("/predict", json={"rows": [mine]}), fifo).status_code == 200


def test_45_fifo_requests_leave_later_image_requests_answered(lenet, special_files):
    """Each FIFO request is refused without taking a worker thread for ever: later requests (by URI, base64 and
    upload) are answered."""
    client, fifo, _ = special_files
    data = Path(lenet[1]["uri"][0]).read_bytes()

    def requests():
        with ThreadPoolExecutor(45) as pool:
            refusals = list(pool.map(lambda i: client.post("/predict", json={"rows": [{"uri": str(fifo)}]}),
                                     range(45)))
        later = [client.post("/predict", json={"rows": [{"uri": str(fifo.parent / "ok.png")}]}),
                 client.post("/predict", json={"rows": [{"image": base64.b64encode(data).decode()}]}),
                 client.post("/predict/images", files=[("images", ("ok.png", data, "image/png"))])]
        return refusals, later

    refusals, later = outcome(requests, fifo)
    for response in refusals:
        assert "not a regular file (a FIFO)" in refused(response, 422, "rows[0].uri")
    assert [response.status_code for response in later] == [200, 200, 200]
    assert later[0].json() == later[1].json() == later[2].json()


# --------------------------------------------------------------------------- deep bodies, image reasons in words

@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
                                  '{"rows": [{"x1": ' + "[" * 100_000 + "]" * 100_000 + "}]}"])
def test_a_deeply_nested_body_is_a_422_not_a_500(mlp, body):
    with TestClient(create_app(ServeConfig(mlp[0])), raise_server_exceptions=False) as client:
        message = refused(client.post("/predict", content=body.encode(),
                                      headers={"content-type": "application/json"}), 422, "body")
        assert "too deeply" in message and '{"rows": [{column: value' in message
        assert client.post("/predict", json={"rows": json_rows(mlp[1].head(2))}).status_code == 200


def test_a_nested_value_is_named_by_its_field_by_kind_not_repr(mlp):
    """Arrays nested as deep as the parser reads are refused on their field, quoted by kind, never by repr(); deeper
    ones on the body."""
    with TestClient(create_app(ServeConfig(mlp[0])), raise_server_exceptions=False) as client:
        for depth, field in ((10, "rows[0].x1"), (500, "rows[0].x1"), (900, "rows[0].x1"), (1200, "body")):
            value = "[" * depth + "1" + "]" * depth
            response = client.post("/predict", content=('{"rows": [{"x1": ' + value + ', "x2": 1, "colour": "red"}]}'
                                                        ).encode(), headers={"content-type": "application/json"})
            message = refused(response, 422, field)
            expected = "too deeply" if field == "body" else "a JSON array is not a number"
            assert expected in message and "[[" not in message


def test_image_errors_show_no_python_object_reprs(lenet_client, lenet):
    junk = b"GIF89a" + b"\x00" * 40
    folder = Path(lenet[1]["uri"][0]).parent
    (folder / "junk.png").write_bytes(junk)
    answers = {"rows[0].image": lenet_client.post("/predict", json={"rows": [{"image": base64.b64encode(junk)
                                                                                         .decode()}]}),
               "rows[0].uri": lenet_client.post("/predict", json={"rows": [{"uri": str(folder / "junk.png")}]}),
               "images[0] (junk.png)": lenet_client.post("/predict/images",
                                                         files=[("images", ("junk.png", junk, "image/png"))]),
               "images[0] (text.png)": lenet_client.post("/predict/images",
                                                         files=[("images", ("text.png", b"hello", "image/png"))])}
    for field, response in answers.items():
        message = refused(response, 422, field)
        assert "not a readable image" in message, message
        assert "<" not in message and " at 0x" not in message and "_io." not in message and "PIL." not in message
