"""deepwater: H2O Deep Water for today's frameworks.

Importing deepwater imports no deep learning framework; a backend loads its framework when a
model is built. The package is in layers (docs/development.md): this module is its face.
"""
from deepwater import datasets, models_zoo
from deepwater.analysis import accessor  # noqa: F401  (importing it registers the `frame.dw` pandas accessor)
from deepwater.analysis.distances import distance, nearest
from deepwater.data.frames import import_file
from deepwater.data.image_sources import import_images
from deepwater.errors import (
    BackendError,
    DeepWaterError,
    DeviceError,
    DivergenceError,
    FrameError,
    ImageError,
    MissingDependencyError,
    ModelFileError,
    NotFittedError,
    ParameterError,
    ReplicaError,
)
from deepwater.model.estimator import (
    AutoEncoderEstimator,
    DeepWaterEstimator,
    H2OAutoEncoderEstimator,
    H2ODeepWaterEstimator,
)
from deepwater.runtime.cluster import ClusterError, init, shutdown
from deepwater.selection.grid_search import GridSearch, H2OGridSearch
from deepwater.selection.stacked_ensemble import H2OStackedEnsembleEstimator, StackedEnsembleEstimator
from deepwater.storage.model_store import get_model, ls, remove
from deepwater.storage.saved_models import load_model, save_model
from deepwater.version import __version__

__all__ = [
    "DeepWaterEstimator", "H2ODeepWaterEstimator", "AutoEncoderEstimator", "H2OAutoEncoderEstimator",
    "StackedEnsembleEstimator", "H2OStackedEnsembleEstimator", "GridSearch", "H2OGridSearch",
    "import_file", "import_images", "datasets", "models_zoo", "distance", "nearest",
    "save_model", "load_model", "get_model", "ls", "remove", "init", "shutdown",
    "DeepWaterError", "ParameterError", "FrameError", "ImageError", "MissingDependencyError", "DeviceError",
    "ModelFileError", "NotFittedError", "DivergenceError", "BackendError", "ReplicaError", "ClusterError", "__version__",
]
