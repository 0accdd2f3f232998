"""Scoring an exported bundle with onnxruntime alone: `deepwater.inference.load(path).predict(frame)`.

The public path of deepwater.inference, kept where users import it from.
"""
from deepwater.deploy.inference import ARRAYS_DIR, BUNDLE_FORMAT, BUNDLE_VERSION, MODEL_ONNX, Scorer, load, read_bundle

__all__ = ["load", "read_bundle", "Scorer", "BUNDLE_FORMAT", "BUNDLE_VERSION", "MODEL_ONNX", "ARRAYS_DIR"]
