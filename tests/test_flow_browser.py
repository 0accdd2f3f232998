"""Deep Water Flow driven in a real headless browser (Debian's chromium through Playwright; never `playwright
install`): import a CSV, build an MLP, watch its job finish with the chart drawn live, open the model, predict and
download the predictions' CSV; a restarted server lists the model again; a wrong token gets 401. Then an image
folder: its thumbnails, LeNet trained on it from the form, and the Grad-CAM overlays on its model page.

The screenshots go to $DEEPWATER_FLOW_SCREENSHOTS when set (docs/images for the docs' Flow page), else to a
temporary folder."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import deepwater as dw
from conftest import make_blobs

pytest.importorskip("torch")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from test_flow import GUARD_SECONDS, free_port  # noqa: E402

from deepwater.flow.app import create_app  # noqa: E402
from deepwater.flow.config import FlowConfig  # noqa: E402

WAIT_MS = GUARD_SECONDS * 1000  # a hang guard: no timing is asserted


class FlowServer:
    """Flow over `config`, served by uvicorn on a free loopback port, on a thread."""

    def __init__(self, config: FlowConfig) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FlowServer:
        self.thread.start()
        deadline = time.monotonic() + GUARD_SECONDS
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=GUARD_SECONDS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def screenshots(tmp_path: Path) -> Path:
    """The folder the walks' screenshots go to: DEEPWATER_FLOW_SCREENSHOTS (docs/images for the guide), else a
    temporary one."""
    shots = Path(os.environ.get("DEEPWATER_FLOW_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def imported(browser, server, path: str):
    """A new page that imported `path` (under the allowed folder) on the Frames page and sees its parse setup."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{server.url}/frames")
    page.fill("#import-path input[name=path]", path)
    page.click("#import-path input[type=submit]")
    assert page.text_content("#response-guess") == "label"
    return page


def test_import_build_watch_open_predict_and_download_in_a_browser(browser, tmp_path):
    allowed, data = tmp_path / "allowed", tmp_path / "data"
    allowed.mkdir()
    make_blobs(150, seed=3).to_csv(allowed / "blobs.csv", index=False)
    shots = screenshots(tmp_path)
    config = FlowConfig(str(data), allow_dirs=(str(allowed),))
    with FlowServer(config) as server:
        page = imported(browser, server, "blobs.csv")
        page.click("#build-link")
        page.fill("#p-hidden", "16")
        page.fill("#p-epochs", "8")
        page.fill("#p-backend", "torch")
        page.uncheck("#p-gpu")
        page.fill("#p-train_samples_per_iteration", "150")
        page.fill("#p-seed", "3")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / "flow-build.png"))
        page.click("#train")
        page.wait_for_selector("#history-chart circle.point")  # drawn by the page's polling while the job runs
        page.wait_for_function("document.getElementById('status').textContent === 'done'")
        page.wait_for_selector("#model-link a")
        assert page.locator("#history-chart circle.point.training").count() == 8  # a scoring per epoch
        page.screenshot(path=str(shots / "flow-job.png"))
        page.click("#model-link a")
        assert page.locator("#history-chart polyline").count() == 1
        assert page.locator("#confusion-training").is_visible()
        page.screenshot(path=str(shots / "flow-model.png"))
        model_url = page.url
        page.click("#predict input[type=submit]")
        with page.expect_download() as download:
            page.click("#download-csv")
        predictions = pd.read_csv(download.value.path())
        assert list(predictions.columns) == ["predict", "a", "b", "c"] and len(predictions) == 150
        assert (predictions["predict"] == make_blobs(150, seed=3)["label"].astype(str)).mean() > 0.9
    with FlowServer(config) as restarted:  # the catalogue outlives the server
        page.goto(f"{restarted.url}/models")
        assert model_url.rsplit("/", 1)[1] in page.text_content("#models")
    with FlowServer(FlowConfig(str(data), token="the-right-token")) as guarded:
        assert page.goto(f"{guarded.url}/models?token=the-wrong-token").status == 401
        assert page.goto(f"{guarded.url}/models?token=the-right-token").status == 200
        assert page.goto(f"{guarded.url}/frames").status == 200  # the cookie carries the token on


def loaded_images(page, selector: str) -> int:
    """How many of the images `selector` finds the browser has decoded (a broken image has no natural width)."""
    return page.eval_on_selector_all(selector, "images => images.filter(i => i.complete && i.naturalWidth > 0)"
                                               ".length")


def test_an_image_folder_trains_lenet_and_its_model_page_shows_grad_cam_in_a_browser(browser, tmp_path):
    allowed, data = tmp_path / "allowed", tmp_path / "data"
    for uri, label in dw.datasets.patch_images(tmp_path / "flat", 64, seed=5).itertuples(index=False):
        (allowed / "patches" / label).mkdir(parents=True, exist_ok=True)
        shutil.move(uri, allowed / "patches" / label / Path(uri).name)  # the class/file.png layout
    shots = screenshots(tmp_path)
    with FlowServer(FlowConfig(str(data), allow_dirs=(str(allowed),))) as server:
        page = imported(browser, server, "patches")
        page.wait_for_function("[...document.querySelectorAll('#thumbnails img')].every(i => i.complete)")
        assert loaded_images(page, "#thumbnails img") == 8
        page.screenshot(path=str(shots / "flow-images.png"))
        page.click("#build-link")
        page.fill("#p-network", "lenet")
        page.fill("#p-epochs", "3")
        page.fill("#p-backend", "torch")
        page.uncheck("#p-gpu")
        page.fill("#p-seed", "5")
        page.click("#train")
        page.wait_for_function("document.getElementById('status').textContent === 'done'")
        page.click("#model-link a")
        page.wait_for_function("[...document.querySelectorAll('#gradcam img')].every(i => i.complete)")
        assert loaded_images(page, "#gradcam img") == 4
        assert page.locator(".roc svg polyline").count() == 1  # two classes: a ROC curve
        page.locator("#gradcam").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "flow-gradcam.png"))
