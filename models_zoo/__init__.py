"""Pretrained models: a manifest of what exists and a loader that returns ready-to-predict estimators.

>>> from deepwater import models_zoo
>>> [m.name for m in models_zoo.list_models()]
['mobilenet_v2', 'efficientnet_lite0']
>>> model = models_zoo.load("mobilenet_v2", backend="torch", gpu=False)   # doctest: +SKIP

Importing this package imports no deep learning framework; load() does.
"""
from .loader import list_models, load
from .manifest import MANIFEST, Normalisation, WeightsSource, ZooEntry, get_entry

__all__ = ["MANIFEST", "Normalisation", "WeightsSource", "ZooEntry", "get_entry", "list_models", "load"]
