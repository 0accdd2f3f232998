"""What an explanation costs (issue 27): model.explain() time per image against model.predict() time per image, per
method and backend, on LeNet over 32x32 grey images where a bright patch decides the class (the test's data set).

Per backend: LeNet trained 2 epochs on 200 images, then `--images` test images (decoded once, held in the reader's
cache) scored by predict() and explained by each method, interleaved (predict, gradcam, saliency,
integrated_gradients, predict, ...) `--repeats` times; each ratio is the median explain time over the median predict
time, both measured in this run on the same images and batches. Grad-CAM and saliency cost one forward and one
backward pass per batch beside predict's forward; integrated gradients `--steps` of them, chunked into batches.
With --figure PATH, the torch model's Grad-CAM of 8 test images is drawn (dw.plots.explain_grid) and saved there
(the guide's figure: docs/images/explain_gradcam.png).
Results: benchmarks/results/explain_speed.json.
Run: `python benchmarks/explain_speed.py [--images 256] [--repeats 3] [--steps 32] [--figure PATH]`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import pandas as pd

import deepwater as dw
from common import alternate, write_result
from deepwater import plots
from deepwater.datasets import PATCH_IMAGE_SIZE, patch_images
from deepwater.runtime.registry import installed_backends

SIZE = PATCH_IMAGE_SIZE
METHODS = ("gradcam", "saliency", "integrated_gradients")


def measure(backend: str, train: pd.DataFrame, test: pd.DataFrame, repeats: int, steps: int,
            figure: str | None) -> dict:
    """Seconds per image of predict and of each method, and the ratios, for one backend."""
    model = dw.DeepWaterEstimator(problem_type="image", network="lenet", image_shape=[SIZE, SIZE], channels=1,
                                  epochs=2, backend=backend, gpu=False, seed=1, quiet_mode=True)
    model.train(x=["uri"], y="label", training_frame=train)
    runs = {"predict": lambda: model.predict(test)}
    runs.update({method: (lambda m=method: model.explain(test, method=m, steps=steps)) for method in METHODS})
    for run in runs.values():  # warm: images decoded, compiled functions and bound executors made
        run()
    times = {name: statistics.median(t for t, _ in results) for name, results in alternate(runs, repeats).items()}
    if figure is not None:
        rows = test.iloc[:8]
        plots.explain_grid(rows, model.explain(rows), titles=model.predict(rows)["predict"].tolist()).savefig(
            figure, dpi=80)
    per_image = {name: seconds / len(test) for name, seconds in times.items()}
    return {"seconds_per_image": per_image,
            "explain_over_predict": {method: per_image[method] / per_image["predict"] for method in METHODS}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--figure", help="where to save the torch model's Grad-CAM grid (PNG)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        train = patch_images(Path(folder) / "train", 200, 0)
        test = patch_images(Path(folder) / "test", args.images, 1)
        backends = {backend: measure(backend, train, test, args.repeats, args.steps,
                                     args.figure if backend == "torch" else None)
                    for backend in installed_backends()}
    result = {"images": args.images, "image_shape": [SIZE, SIZE, 1], "network": "lenet", "repeats": args.repeats,
              "steps": args.steps, "backends": backends}
    print(write_result("explain_speed", result), file=sys.stderr)
    for backend, figures in backends.items():
        print(backend, {m: round(r, 2) for m, r in figures["explain_over_predict"].items()})
    return result


if __name__ == "__main__":
    main()
