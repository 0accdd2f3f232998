"""deepwater: H2O Deep Water for today's frameworks.

Importing deepwater imports no deep learning framework; a backend loads its framework when a
model is built.
"""
from . import accessor, datasets, models_zoo  # accessor registers the `frame.dw` pandas accessor
from .cluster import ClusterError, init, shutdown
from .distances import distance, nearest
from .errors import (
                     DeepWaterError,
                     DeviceError,
                     FrameError,
                     ImageError,
                     MissingDependencyError,
                     ModelFileError,
                     NotFittedError,
                     ParameterError,
)
from .ensemble import H2OStackedEnsembleEstimator, StackedEnsembleEstimator
from .estimator import DeepWaterEstimator, H2OAutoEncoderEstimator, H2ODeepWaterEstimator
from .frames import import_file
from .grid import GridSearch, H2OGridSearch
from .model_files import load_model, save_model
from .model_store import get_model, ls, remove

__version__ = "0.1.0"
__all__ = [
    "DeepWaterEstimator", "H2ODeepWaterEstimator", "H2OAutoEncoderEstimator", "StackedEnsembleEstimator", "H2OStackedEnsembleEstimator",
    "import_file", "datasets", "accessor", "models_zoo",
    "distance", "nearest", "save_model", "load_model", "get_model", "ls", "remove",
    "DeepWaterError", "ParameterError", "FrameError", "ImageError", "MissingDependencyError", "DeviceError",
    "ModelFileError", "NotFittedError", "H2OGridSearch", "GridSearch", "init", "shutdown", "ClusterError",
]
