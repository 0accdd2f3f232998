"""deepwater: H2O Deep Water for today's frameworks.

Importing deepwater imports no deep learning framework; a backend loads its framework when a
model is built.
"""
from deepwater import datasets, models_zoo  # accessor registers the `frame.dw` pandas accessor
from deepwater.analysis import accessor
from deepwater.runtime.cluster import ClusterError, init, shutdown
from deepwater.analysis.distances import distance, nearest
from deepwater.errors import (
                     DeepWaterError,
                     DeviceError,
                     FrameError,
                     ImageError,
                     MissingDependencyError,
                     ModelFileError,
                     NotFittedError,
                     ParameterError,
)
from deepwater.selection.stacked_ensemble import H2OStackedEnsembleEstimator, StackedEnsembleEstimator
from deepwater.model.estimator import DeepWaterEstimator, H2OAutoEncoderEstimator, H2ODeepWaterEstimator
from deepwater.data.frames import import_file
from deepwater.selection.grid_search import GridSearch, H2OGridSearch
from deepwater.storage.saved_models import load_model, save_model
from deepwater.storage.model_store import get_model, ls, remove

__version__ = "0.1.0"
__all__ = [
    "DeepWaterEstimator", "H2ODeepWaterEstimator", "H2OAutoEncoderEstimator", "StackedEnsembleEstimator", "H2OStackedEnsembleEstimator",
    "import_file", "datasets", "accessor", "models_zoo",
    "distance", "nearest", "save_model", "load_model", "get_model", "ls", "remove",
    "DeepWaterError", "ParameterError", "FrameError", "ImageError", "MissingDependencyError", "DeviceError",
    "ModelFileError", "NotFittedError", "H2OGridSearch", "GridSearch", "init", "shutdown", "ClusterError",
]
