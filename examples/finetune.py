"""Fine-tuning quick start: the zoo's ImageNet MobileNetV2 fine-tuned on a frame of photo URIs.

Run it with `python examples/finetune.py [data_dir]`. It makes a handful of photos from scikit-image's sample
images (a cat, a cup of coffee, a motorbike: random crops, some mirrored, saved as JPEG files under data_dir),
fine-tunes `DeepWaterEstimator(network="mobilenet_v2", pretrained=True)` on them with the fine-tuning recipe,
then predicts held-out crops (with and without test-time augmentation), takes their deep features and exports
the model as an ONNX bundle that deepwater.inference scores with onnxruntime alone.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import skimage
from PIL import Image

import deepwater as dw
from deepwater import inference

SAMPLES = {"cat": "chelsea.png", "coffee": "coffee.png", "motorbike": "motorcycle_left.png"}


def make_photos(folder: str | os.PathLike, per_class: int, seed: int) -> pd.DataFrame:
    """`per_class` random crops (80-100% of each side, half of them mirrored) of each sample photo, as JPEG files
    under `folder`: a frame of (uri, label)."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, name in SAMPLES.items():
        photo = Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")
        width, height = photo.size
        for i in range(per_class):
            w, h = (int(side * rng.uniform(0.8, 1.0)) for side in (width, height))
            left, top = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
            crop = photo.crop((left, top, left + w, top + h))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            path = folder / f"{label}_{seed}_{i}.jpg"
            crop.save(path, quality=90)
            rows.append({"uri": str(path), "label": label})
    return pd.DataFrame(rows).astype({"label": "category"})


def main(data_dir: str, epochs: float = 1, image_size: int = 224, per_class: int = 4, backend: str = "auto") -> float:
    """Fine-tune on `per_class` photos of each class, score as many held-out ones; return their accuracy."""
    train = make_photos(Path(data_dir) / "training", per_class, seed=1)
    test = make_photos(Path(data_dir) / "test", per_class, seed=2)
    model = dw.DeepWaterEstimator(network="mobilenet_v2", pretrained=True, epochs=epochs, mini_batch_size=4,
                                  image_shape=[image_size, image_size], backend=backend, seed=7,
                                  quiet_mode=not sys.stderr.isatty())
    model.train(x=["uri"], y="label", training_frame=train)
    summary = model.summary()
    print(f"Fine-tuned {summary['pretrained']} on {summary['backend']} ({summary['device']}) in "
          f"{summary['run_seconds']} s with the recipe {summary['recipe']}")

    plain, averaged = model.predict(test), model.predict(test, tta=True)  # tta: flips and crops, averaged
    print(pd.DataFrame({"label": test["label"], "predict": plain["predict"], "with tta": averaged["predict"]}))
    accuracy = model.model_performance(test).accuracy()
    print(f"Test accuracy: {accuracy:.4f}, with tta: {model.model_performance(test, tta=True).accuracy():.4f}")

    features = model.deepfeatures(test, "global_pool")  # the 1280 pooled features the new output layer reads
    print(f"Deep features of layer 'global_pool': {features.shape[1]} columns, e.g. {list(features.columns[:2])}")

    bundle = model.export(Path(data_dir) / "bundle", force=True)
    scorer = inference.load(bundle)
    agree = (scorer.predict(test)["predict"].astype(str) == plain["predict"].astype(str)).mean()
    scorer.close()
    print(f"Exported to {bundle}; onnxruntime agrees with the model on {agree:.0%} of the test photos")
    return accuracy


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.expanduser("~"), ".cache", "deepwater", "finetune"))
