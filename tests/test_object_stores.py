"""Images in object stores and zip files: dw.import_images and the image reader against a real S3 protocol server
(moto's server mode, started on 127.0.0.1 by this module), its errors (404, 403, no credentials, a corrupt image, a
truncated download, a store that stalls), and import_images from a folder, a zip file and a CSV manifest.

Reading images is the same for every backend (the reader hands the backends decoded arrays), so the errors are
tested once; a model trained from the store is checked against one trained from local files on every installed
backend."""
from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import GUARD_SECONDS, installed_backends, write_png
from deepwater.data.images import ImageReader, ImageShape, is_image_uri, looks_like_image_column
from deepwater.errors import FrameError, ImageError, MissingDependencyError, ParameterError

boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

BUCKET = "images"
SHAPE = ImageShape(12, 12, 1)
DENIED = "private/"  # the prefix the reader's credentials may not read (a Deny in its IAM policy)
BACKENDS = installed_backends()


@dataclass(frozen=True)
class Store:
    endpoint: str
    key: str  # the reader's credentials: a user of the server's IAM
    secret: str
    folder: Path  # the same images as s3://images/train/, on local disk

    def options(self, **changed: str) -> dict[str, str]:
        """storage_options that reach the store without any environment variable."""
        return {"endpoint_url": self.endpoint, "key": self.key, "secret": self.secret, **changed}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto's server did not start on port {port} (exit code {process.poll()})")


def write_classes(folder: Path) -> Path:
    """12 small PNGs in class folders: dark/ (brightness ~40) and light/ (~215)."""
    for i in range(12):
        label = "dark" if i % 2 == 0 else "light"
        (folder / label).mkdir(parents=True, exist_ok=True)
        write_png(folder / label / f"img{i:02d}.png", 40 if label == "dark" else 215, seed=i)
    return folder


def put_user_policy(iam, user: str) -> None:
    statements = [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                  {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/{DENIED}*"}]
    iam.put_user_policy(UserName=user, PolicyName="read-but-private",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """moto's S3 server on 127.0.0.1 holding s3://images/train/{dark,light}/imgNN.png, a corrupt image and a denied
    one; after the set-up it checks every request's credentials against its IAM (a user with a policy)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        endpoint = f"http://127.0.0.1:{port}"
        admin = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "admin",
                 "aws_secret_access_key": "admin"}
        s3, iam = boto3.client("s3", **admin), boto3.client("iam", **admin)
        s3.create_bucket(Bucket=BUCKET)
        folder = write_classes(tmp_path_factory.mktemp("store") / "train")
        for file in sorted(folder.rglob("*.png")):
            s3.upload_file(str(file), BUCKET, f"train/{file.relative_to(folder).as_posix()}")
        s3.put_object(Bucket=BUCKET, Key="broken/dark/bad.png", Body=b"\x89PNG\r\n\x1a\n not the rest of a png")
        s3.upload_file(str(folder / "dark" / "img00.png"), BUCKET, f"{DENIED}dark/img00.png")
        iam.create_user(UserName="reader")
        put_user_policy(iam, "reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=GUARD_SECONDS).close()  # from now on, credentials are checked
        yield Store(endpoint, key["AccessKeyId"], key["SecretAccessKey"], folder)
    finally:
        server.terminate()
        server.wait(timeout=GUARD_SECONDS)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS credentials anywhere: no variables, no profile files, no instance metadata."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return monkeypatch


@pytest.fixture
def aws(no_aws: pytest.MonkeyPatch, store: Store) -> Store:
    """The store's endpoint and the reader's credentials in the usual environment variables."""
    no_aws.setenv("AWS_ENDPOINT_URL", store.endpoint)
    no_aws.setenv("AWS_ACCESS_KEY_ID", store.key)
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", store.secret)
    return store


def read(uri: str, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    with ImageReader(SHAPE, **kwargs) as reader:
        return reader.read_batch([uri], [0])


def finished(call: Callable[[], object]) -> object:
    """What call() returns or raises, run on a thread that the test waits for only GUARD_SECONDS (a hang guard)."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(call())
        except Exception as error:
            result.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_SECONDS)
    assert result, f"still waiting after {GUARD_SECONDS} s: the call hangs"
    return result[0]


# ---------------------------------------------------------------------------
# Listing and reading
# ---------------------------------------------------------------------------

def test_store_uris_are_image_uris() -> None:
    column = pd.Series(["s3://b/train/cat/1.png", "gs://b/x.JPG", "az://c/y.jpeg", "hf://datasets/o/r/z.webp",
                        "zip://cat/1.png::/data/train.zip"])
    assert all(is_image_uri(uri) for uri in column) and looks_like_image_column(column)
    assert not is_image_uri("s3://b/train/labels.csv") and not is_image_uri("zip://train.csv::/data/x.zip")


def test_import_images_lists_a_prefix_by_class_folder(aws: Store) -> None:
    frame = dw.import_images(f"s3://{BUCKET}/train/")
    local = dw.import_images(aws.folder)
    assert list(frame.columns) == ["uri", "label"] and len(frame) == 12
    assert list(frame["uri"]) == [uri.replace(str(aws.folder), f"s3://{BUCKET}/train") for uri in local["uri"]]
    assert list(frame["label"]) == list(local["label"]) and list(frame["label"].cat.categories) == ["dark", "light"]
    assert len(dw.import_images(f"s3://{BUCKET}/train", labels="none").columns) == 1


def test_storage_options_reach_the_store_without_environment_variables(no_aws: pytest.MonkeyPatch,
                                                                       store: Store) -> None:
    frame = dw.import_images(f"s3://{BUCKET}/train/", storage_options=store.options())
    batch, mask = read(frame["uri"][0], storage_options=store.options())
    with ImageReader(SHAPE) as reader:
        expected, _ = reader.read_batch([str(store.folder / "dark" / "img00.png")], [0])
    assert mask.all() and np.array_equal(batch, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_trained_from_the_store_predicts_as_one_trained_from_local_files(aws: Store, backend: str) -> None:
    predictions = []
    for source in (str(aws.folder), f"s3://{BUCKET}/train/"):
        frame = dw.import_images(source)
        model = dw.DeepWaterEstimator(network="lenet", backend=backend, image_shape=[28, 28], channels=1, epochs=2,
                                      mini_batch_size=4, gpu=False, quiet_mode=True, seed=7)
        model.train(x=["uri"], y="label", training_frame=frame)
        assert model.summary()["problem_type"] == "image"
        predictions.append(model.predict(frame).drop(columns="predict").to_numpy())
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-6)


def test_a_model_given_storage_options_trains_from_the_store_and_saves_no_secret(
        no_aws: pytest.MonkeyPatch, store: Store, tmp_path: Path) -> None:
    frame = dw.import_images(f"s3://{BUCKET}/train/", storage_options=store.options())
    model = dw.DeepWaterEstimator(network="lenet", backend="torch", image_shape=[28, 28], channels=1, epochs=2,
                                  mini_batch_size=4, gpu=False, quiet_mode=True, seed=7, image_cache_mb=0,
                                  image_cache_dir=str(tmp_path / "decoded"), storage_options=store.options())
    model.train(x=["uri"], y="label", training_frame=frame)
    assert model._fitted.inputs.reader.decoded == len(frame)  # each object read once in the run: the disk cache
    expected = model.predict(frame).drop(columns="predict").to_numpy()
    saved_file = dw.save_model(model, str(tmp_path / "saved"))
    with zipfile.ZipFile(saved_file) as archive:
        saved = b"".join(archive.read(name) for name in archive.namelist())
    assert store.secret.encode() not in saved and store.key.encode() not in saved
    no_aws.setenv("AWS_ENDPOINT_URL", store.endpoint)  # a loaded model reads with the environment's credentials
    no_aws.setenv("AWS_ACCESS_KEY_ID", store.key)
    no_aws.setenv("AWS_SECRET_ACCESS_KEY", store.secret)
    loaded = dw.load_model(saved_file)
    assert loaded.params["storage_options"]["actual"] is None
    np.testing.assert_allclose(loaded.predict(frame).drop(columns="predict").to_numpy(), expected, rtol=1e-6)


def test_an_untrained_models_repr_hides_its_storage_options() -> None:
    shown = repr(dw.DeepWaterEstimator(storage_options={"key": "AKIA-EXAMPLE", "secret": "s3cr3t-value"}))
    assert "s3cr3t-value" not in shown and "AKIA-EXAMPLE" not in shown and "storage_options=<hidden>" in shown


def test_storage_options_must_be_a_dict() -> None:
    with pytest.raises(ParameterError, match="storage_options=list must be a dict"):
        dw.DeepWaterEstimator(storage_options=["key", "secret"])


# ---------------------------------------------------------------------------
# The store's errors, named with the URI and the store's reason
# ---------------------------------------------------------------------------

def test_a_missing_object_or_bucket_is_a_404_naming_the_uri(aws: Store) -> None:
    uri = f"s3://{BUCKET}/train/dark/none.png"
    with pytest.raises(ImageError, match=r"none\.png.*no such object \(404\)") as raised:
        read(uri)
    assert raised.value.uri == uri
    with pytest.raises(FrameError, match=r"s3://no-such-bucket/train/.*no such bucket \(404\)"):
        dw.import_images("s3://no-such-bucket/train/")
    with pytest.raises(FrameError, match="holds no images in class folders"):
        dw.import_images(f"s3://{BUCKET}/nothing-here/")


def test_a_missing_object_among_good_ones_is_named_or_skipped(aws: Store, tmp_path: Path) -> None:
    """A batch's objects are fetched together: each image keeps its own bytes and the one missing is named or
    skipped, whether a batch reads them or a preload; with a disk cache, a second reader fetches nothing."""
    names = ["dark/img00.png", "light/img01.png", "dark/img02.png", "light/img03.png"]
    good = [f"s3://{BUCKET}/train/{name}" for name in names]
    missing = f"s3://{BUCKET}/train/dark/none.png"
    uris = [good[0], missing, *good[1:]]
    with ImageReader(SHAPE) as reader:
        expected, _ = reader.read_batch([str(aws.folder / name) for name in names], list(range(len(names))))
        with pytest.raises(ImageError, match=r"train/dark/none\.png.*no such object \(404\)") as raised:
            reader.read_batch(uris, list(range(len(uris))))
    assert raised.value.uri == missing
    for cache_dir, decoded in ((tmp_path, len(good)), (tmp_path, 0)):
        with ImageReader(SHAPE, bad_images="skip", cache_dir=cache_dir, cache_mb=0) as reader:
            batch, mask = reader.read_batch(uris, list(range(len(uris))))
            assert list(mask) == [True, False, True, True, True] and np.array_equal(batch, expected)
            assert reader.skipped == 1 and reader.decoded == decoded
    with ImageReader(SHAPE, bad_images="skip") as reader:
        assert reader.preload(uris) and reader.skipped == 1 and reader.decoded == len(good)
        assert np.array_equal(reader.read_batch(good, list(range(len(good))))[0], expected)


def test_denied_objects_and_wrong_credentials_are_a_403(aws: Store) -> None:
    with pytest.raises(ImageError, match=rf"{DENIED}dark/img00\.png.*access denied \(403: Access Denied\)"):
        read(f"s3://{BUCKET}/{DENIED}dark/img00.png")
    wrong = aws.options(key="AKIANOTAKEYOFTHISONE", secret="wrong")
    with pytest.raises(ImageError, match=r"img00\.png.*access denied \(403"):
        read(f"s3://{BUCKET}/train/dark/img00.png", storage_options=wrong)


def test_no_credentials_names_the_variables_and_storage_options(no_aws: pytest.MonkeyPatch, store: Store) -> None:
    no_aws.setenv("AWS_ENDPOINT_URL", store.endpoint)
    with pytest.raises(ImageError, match="img00.png.*no credentials.*AWS_ACCESS_KEY_ID.*storage_options"):
        read(f"s3://{BUCKET}/train/dark/img00.png")
    with pytest.raises(FrameError, match=r"s3://images/train/.*cannot be listed: no credentials"):
        dw.import_images(f"s3://{BUCKET}/train/")


def test_a_corrupt_image_is_skipped_or_named(aws: Store) -> None:
    uris = [f"s3://{BUCKET}/broken/dark/bad.png", f"s3://{BUCKET}/train/dark/img00.png"]
    with pytest.raises(ImageError, match=r"broken/dark/bad\.png.*not a readable image"):
        ImageReader(SHAPE).read_batch(uris, [0, 1])
    reader = ImageReader(SHAPE, bad_images="skip")
    batch, mask = reader.read_batch(uris, [0, 1])
    assert list(mask) == [False, True] and batch.shape == (1, 1, 12, 12) and reader.skipped == 1


class ShortAnswers(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint whose every object download stops after 100 of the 1000 bytes it announced."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()

    def do_GET(self) -> None:
        self.do_HEAD()
        self.wfile.write(b"\x89PNG" + b"x" * 96)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_a_truncated_download_is_named(no_aws: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ShortAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{server.server_port}", "key": "a", "secret": "b"}
        with pytest.raises(ImageError, match=r"x\.png.*cut short \(100 of 1000 bytes\) \(truncated\)"):
            read(f"s3://{BUCKET}/x.png", storage_options=options)
    finally:
        server.shutdown()
        server.server_close()


class OneImage(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that answers every object with the same PNG and notes each request's method."""

    protocol_version = "HTTP/1.1"
    body = b""
    methods: list[str] = []

    def do_HEAD(self) -> None:
        self.methods.append("HEAD")
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()

    def do_GET(self) -> None:
        self.methods.append("GET")
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_each_store_image_is_one_request(no_aws: pytest.MonkeyPatch, tmp_path: Path) -> None:
    OneImage.body, OneImage.methods = write_png(tmp_path / "x.png", 40).read_bytes(), []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneImage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{server.server_port}", "key": "a", "secret": "b"}
        with ImageReader(SHAPE, storage_options=options) as reader:
            _, together = reader.read_batch([f"s3://{BUCKET}/a.png", f"s3://{BUCKET}/b.png"], [0, 1])
            _, alone = reader.read_batch([f"s3://{BUCKET}/c.png"], [2])
        assert together.all() and alone.all() and OneImage.methods == ["GET"] * 3  # no HEAD for each size
    finally:
        server.shutdown()
        server.server_close()


def test_a_store_that_stalls_is_a_timeout_not_a_hang(no_aws: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        options = {"endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}", "key": "a", "secret": "b"}
        error = finished(lambda: read(f"s3://{BUCKET}/x.png", storage_options=options, http_timeout=1))
        assert isinstance(error, ImageError) and "did not answer within 1s (timed out)" in str(error)
        listing = finished(lambda: dw.import_images(f"s3://{BUCKET}/train/", storage_options=options, timeout=1))
        assert isinstance(listing, FrameError) and "timed out" in str(listing)


def test_a_missing_store_package_names_the_extra(no_aws: pytest.MonkeyPatch) -> None:
    no_aws.setitem(sys.modules, "s3fs", None)  # as if s3fs were not installed, and never imported by fsspec
    no_aws.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(MissingDependencyError, match=r"s3fs.*pip install 'deepwater\[s3\]'"):
        read(f"s3://{BUCKET}/x.png")


def test_bad_arguments_are_parameter_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="labels='class'"):
        dw.import_images(tmp_path, labels="class")
    with pytest.raises(ParameterError, match="storage_options=list"):
        dw.import_images("s3://b/train/", storage_options=["key"])
    with pytest.raises(ParameterError, match=r"storage_options with \['no_such_option'\] are not all options of "
                                             "the s3:// store"):
        read("s3://b/x.png", storage_options={"no_such_option": 1})
    with pytest.raises(ParameterError, match="timeout='10' must be a number of seconds > 0"):
        dw.import_images(tmp_path, timeout="10")
    with pytest.raises(FrameError, match="does not exist"):
        dw.import_images(tmp_path / "none")


# ---------------------------------------------------------------------------
# A folder, a zip file and CSV manifests
# ---------------------------------------------------------------------------

def test_a_folder_is_listed_by_class_or_whole(tmp_path: Path) -> None:
    folder = write_classes(tmp_path / "train")
    frame = dw.import_images(folder)
    assert len(frame) == 12 and list(frame["label"].cat.categories) == ["dark", "light"]
    assert all(Path(uri).parent.name == label for uri, label in zip(frame["uri"], frame["label"]))
    assert sorted(dw.import_images(folder, labels="none")["uri"]) == sorted(frame["uri"])


def test_a_zip_file_is_read_in_place(tmp_path: Path) -> None:
    folder = write_classes(tmp_path / "train")
    archive = Path(shutil.make_archive(str(tmp_path / "train"), "zip", tmp_path, "train"))
    with zipfile.ZipFile(archive, "a") as written:  # what a zip made on macOS holds beside each file
        written.writestr("__MACOSX/train/dark/._img00.png", b"resource fork")
    frame = dw.import_images(archive)
    assert len(frame) == 12 and frame["uri"][0] == f"zip://train/dark/img00.png::{archive}"
    assert list(frame["label"]) == list(dw.import_images(folder)["label"])
    with ImageReader(SHAPE) as reader:
        from_zip, _ = reader.read_batch(list(frame["uri"]), list(range(12)))
        from_files, _ = reader.read_batch(list(dw.import_images(folder)["uri"]), list(range(12)))
    assert np.array_equal(from_zip, from_files)
    with pytest.raises(ImageError, match="has no member 'train/none.png'"):
        read(f"zip://train/none.png::{archive}")
    with pytest.raises(ImageError, match="the zip file .*none.zip': no such file"):
        read(f"zip://train/dark/img00.png::{tmp_path / 'none.zip'}")


def test_a_zip_with_a_csv_manifest_uses_it(tmp_path: Path) -> None:
    write_classes(tmp_path / "images")
    archive = tmp_path / "dataset.zip"
    with zipfile.ZipFile(archive, "w") as written:
        written.writestr("dataset/train.csv", "file_path,label\nimages/dark/img00.png,night\n"
                                              "images/light/img01.png,day\n")
        for name in ("dark/img00.png", "light/img01.png"):
            written.write(tmp_path / "images" / name, f"dataset/images/{name}")
    frame = dw.import_images(archive)
    assert list(frame["uri"]) == [f"zip://dataset/images/dark/img00.png::{archive}",
                                  f"zip://dataset/images/light/img01.png::{archive}"]
    assert list(frame["label"]) == ["night", "day"] and isinstance(frame["label"].dtype, pd.CategoricalDtype)
    batch, mask = ImageReader(SHAPE).read_batch(list(frame["uri"]), [0, 1])
    assert mask.all() and batch[0].mean() < 100 < batch[1].mean()


def test_a_csv_manifest_resolves_relative_uris(tmp_path: Path, aws: Store) -> None:
    folder = write_classes(tmp_path / "train")
    manifest = tmp_path / "train.csv"
    absolute = str(folder / "light" / "img01.png")
    manifest.write_text(f"uri,label\ntrain/dark/img00.png,dark\n{absolute},light\ns3://{BUCKET}/train/x.png,dark\n")
    frame = dw.import_images(manifest)
    assert list(frame["uri"]) == [str(folder / "dark" / "img00.png"), absolute, f"s3://{BUCKET}/train/x.png"]
    assert list(frame["label"]) == ["dark", "light", "dark"]
    boto3.client("s3", endpoint_url=aws.endpoint, aws_access_key_id=aws.key, aws_secret_access_key=aws.secret,
                 region_name="us-east-1").put_object(Bucket=BUCKET, Key="lists/train.csv",
                                                     Body=b"uri,label\n../train/dark/img00.png,dark\n")
    in_store = dw.import_images(f"s3://{BUCKET}/lists/train.csv")
    assert list(in_store["uri"]) == [f"s3://{BUCKET}/train/dark/img00.png"]
    manifest.write_text("path,label\na.png,dark\n")
    with pytest.raises(FrameError, match=r"train\.csv.*no 'uri' column \(its columns: path, label\)"):
        dw.import_images(manifest)
