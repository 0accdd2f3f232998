"""H2O's grid search over DeepWaterEstimator's parameters: H2OGridSearch (also GridSearch).

The hyper-space is every combination of the hyper-parameters' values, walked in order ('Cartesian') or at
random without repeats ('RandomDiscrete', ordered by search_criteria's seed), until it is exhausted or
search_criteria's limits say stop: max_models, max_runtime_secs (each model also gets at most the time
left) and H2O's early stopping, which sorts the models built so far from worst to best by
stopping_metric and stops when the best stopping_rounds of them no longer improve on the next ones by
stopping_tolerance (scoring.should_stop, H2O's moving-average rule). Models are ranked by their
cross-validated metrics where they have them, else validation, else training (H2O's rule).

Models are called '<grid_id>_model_<n>', n counting in the walk's order. A combination whose model fails
to build is listed in `failures` and the walk goes on. A model is identified by its parameters, columns and
frames (H2O's parameter checksum): a grid trained again under the same grid_id takes the models it already
has from this process's model store, or, after a crash, from its export folder, where each model is saved
as it finishes, beside a manifest '<grid_id>.grid.json'.

parallelism=1 trains one model after another in this process; parallelism > 1 (0: one per CPU) trains that
many at once as Ray tasks once deepwater.init() has run (model/jobs.py, model/ray_jobs.py).
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import random
import re
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from deepwater.analysis import plots
from deepwater.analysis.metrics import ModelMetrics
from deepwater.data.digests import frame_digest
from deepwater.data.frames import check_frame
from deepwater.errors import DeepWaterError, ModelFileError, ParameterError, close_matches
from deepwater.model.estimator import DeepWaterEstimator
from deepwater.model.jobs import Failure, InProcess, Job, Runner
from deepwater.model.runners import runner
from deepwater.runtime.cluster import connected
from deepwater.storage.model_store import get_model, held
from deepwater.storage.saved_models import is_saved_model, json_values, load_model, save_model
from deepwater.tracking.runs import log_grid, require_mlflow
from deepwater.training import parameters as parameter_table
from deepwater.training.schedule import should_stop

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STRATEGIES = ("Cartesian", "RandomDiscrete")
NOT_SEARCHED = ("model_id",)  # the grid names its models

# sort_by names (any case) -> (key of ModelMetrics.values, larger is better)
SCALAR_METRICS = {
    "logloss": ("logloss", False), "mse": ("mse", False), "rmse": ("rmse", False), "mae": ("mae", False),
    "r2": ("r2", True), "auc": ("auc", True), "aucpr": ("aucpr", True), "pr_auc": ("aucpr", True),
    "mean_per_class_error": ("mean_per_class_error", False), "err": ("classification_error", False),
    "classification_error": ("classification_error", False), "misclassification": ("classification_error", False),
    "residual_deviance": ("mean_residual_deviance", False), "mean_residual_deviance": ("mean_residual_deviance", False),
    "deviance": ("mean_residual_deviance", False),
}
# criteria taken at their best threshold for two classes (H2O's sorting); accuracy is a number for more classes
MAXIMISED_METRICS = ("accuracy", "f1", "f2", "f0point5", "precision", "recall", "specificity", "absolute_mcc",
                     "min_per_class_accuracy", "mean_per_class_accuracy")

_MANIFESTS: dict[str, dict[str, str]] = {}  # grid_id -> {model_id: fingerprint} of the models built here


def _close(name: str, known: Sequence[str]) -> str:
    close = close_matches(name, known)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# --------------------------------------------------------------------------- search criteria

@dataclass(frozen=True)
class SearchCriteria:
    """H2O's search_criteria: how the hyper-space is walked and when the walk stops (0: no limit)."""

    strategy: str = "Cartesian"
    max_models: int = 0
    max_runtime_secs: float = 0.0
    seed: int = -1
    stopping_metric: str = "AUTO"
    stopping_rounds: int = 0
    stopping_tolerance: float = 1e-3


CRITERIA_CHECKS = {
    "strategy": parameter_table.one_of(*STRATEGIES),
    "max_models": parameter_table.number(0, integer=True),
    "max_runtime_secs": parameter_table.number(0),
    "seed": parameter_table.number(-1, 2**32 - 1, integer=True),
    "stopping_metric": parameter_table.one_of(*parameter_table.STOPPING_METRICS),
    "stopping_rounds": parameter_table.number(0, integer=True),
    "stopping_tolerance": parameter_table.number(0),
}


def parse_search_criteria(given: Mapping[str, Any] | None) -> SearchCriteria:
    """`given` checked key by key (ParameterError naming the key, with close names for an unknown one)."""
    if given is None:
        return SearchCriteria()
    if not isinstance(given, Mapping):
        raise ParameterError(f"search_criteria={given!r} is not allowed: give a dict, e.g. {{'strategy': "
                             "'Cartesian'}, or {'strategy': 'RandomDiscrete', 'max_models': 10, 'seed': 1}.")
    checked = {}
    for key, value in given.items():
        if key not in CRITERIA_CHECKS:
            raise ParameterError(f"search_criteria has no key {key!r}{_close(key, list(CRITERIA_CHECKS))}; its keys "
                                 f"are {', '.join(CRITERIA_CHECKS)}.")
        checked[key] = CRITERIA_CHECKS[key](f"search_criteria[{key!r}]", value)
    criteria = SearchCriteria(**checked)
    if criteria.strategy == "Cartesian" and "seed" in checked:
        raise ParameterError("search_criteria['seed'] orders a RandomDiscrete walk, and a Cartesian grid walks every "
                             "combination in order: drop seed, or pass strategy='RandomDiscrete'.")
    return criteria


# --------------------------------------------------------------------------- the hyper-space

class HyperSpace:
    """The hyper-parameters and their checked values; combination i counts in Cartesian order (the last
    hyper-parameter changes fastest)."""

    def __init__(self, hyper_params: Mapping[str, Sequence[Any]]) -> None:
        if not isinstance(hyper_params, Mapping) or not hyper_params:
            raise ParameterError(f"hyper_params={hyper_params!r}: give a dict of parameter names and the values to "
                                 "try, e.g. {'hidden': [[32], [64, 64]], 'learning_rate': [0.01, 0.001]}.")
        self.names, known = list(hyper_params), parameter_table.PARAMETERS
        for name, values in hyper_params.items():
            if name not in known:
                raise ParameterError(f"hyper_params: {parameter_table.unknown_parameter(name, known)}")
            if name in NOT_SEARCHED:
                raise ParameterError(f"hyper_params[{name!r}]: a grid names its models '<grid_id>_model_<n>'; drop "
                                     f"{name} (name the grid with grid_id).")
            if not isinstance(values, (list, tuple)) or not values:
                raise ParameterError(f"hyper_params[{name!r}]={values!r}: give a non-empty list of the values to try "
                                     f"(a list of lists for list parameters, e.g. 'hidden': [[32], [64, 64]]).")
        raw = [list(hyper_params[name]) for name in self.names]
        self.size = math.prod(len(values) for values in raw)
        self.values = [self._checked(position, raw) for position in range(len(raw))]

    def _checked(self, position: int, raw: list[list[Any]]) -> list[Any]:
        """The values of hyper-parameter `position`, each checked by the parameter table, without repeats."""
        name, checked = self.names[position], []
        for index, value in enumerate(raw[position]):
            first = index * math.prod(len(values) for values in raw[position + 1:])  # the others at their first value
            where = f"hyper_params[{name!r}][{index}] in the grid's combination {self._pick(first, raw)}"
            try:
                value = parameter_table.check(name, value)
            except ParameterError as error:
                raise ParameterError(f"{where}: {error}") from error
            if value in checked:
                raise ParameterError(f"{where}: {value!r} is listed twice; list each value once.")
            checked.append(value)
        return checked

    def _pick(self, index: int, values: list[list[Any]]) -> dict[str, Any]:
        chosen = {}
        for name, options in reversed(list(zip(self.names, values))):
            index, position = divmod(index, len(options))
            chosen[name] = options[position]
        return {name: chosen[name] for name in self.names}

    def combination(self, index: int) -> dict[str, Any]:
        """Combination `index` (0 <= index < size) as {hyper-parameter: checked value}."""
        return self._pick(index, self.values)

    def walk(self, criteria: SearchCriteria) -> Iterator[int]:
        """The combinations' indices in the strategy's order: 0, 1, ... or random without repeats."""
        if criteria.strategy == "Cartesian":
            yield from range(self.size)
            return
        rng, seen = random.Random(None if criteria.seed < 0 else criteria.seed), set()
        while len(seen) < self.size:
            index = rng.randrange(self.size)
            if index not in seen:
                seen.add(index)
                yield index


# --------------------------------------------------------------------------- ranking models

def ranked_metrics(model: DeepWaterEstimator) -> ModelMetrics:
    """The metrics a grid ranks `model` by: cross-validated, else validation, else training (H2O's rule)."""
    fitted = model._require_fitted()
    if fitted.cross_validation is not None:
        return fitted.cross_validation.metrics
    return fitted.validation_metrics if fitted.validation_metrics is not None else model.model_performance(train=True)


def sort_metric(name: str) -> tuple[str, bool]:
    """H2O's sort_by `name` (any case) as (the name, larger is better)."""
    key = str(name).lower()
    if key in SCALAR_METRICS:
        return key, SCALAR_METRICS[key][1]
    if key in MAXIMISED_METRICS:
        return key, True
    known = list(SCALAR_METRICS) + list(MAXIMISED_METRICS)
    raise ParameterError(f"sort_by={name!r} is not a metric a grid sorts by{_close(key, known)}; use one of "
                         f"{', '.join(known)}.")


def metric_value(metrics: ModelMetrics, name: str) -> float:
    """The value of sort metric `name` (from sort_metric) in `metrics`: binomial criteria at their best
    threshold, as H2O sorts by them."""
    try:
        if name in SCALAR_METRICS:
            return float(metrics.values[SCALAR_METRICS[name][0]])
        value = metrics.accuracy() if name == "accuracy" else metrics.metric(name)
        return float(value if isinstance(value, float) else value[0][1])
    except KeyError as error:
        raise ParameterError(f"{name!r} is not a metric of these {metrics.kind} models; they have "
                             f"{', '.join(sorted(metrics.values))}.") from error


def _ordered(models: list[DeepWaterEstimator], name: str, decreasing: bool) -> list[DeepWaterEstimator]:
    """`models` by metric `name`, NaN last, ties in their order."""
    def key(model: DeepWaterEstimator) -> tuple[bool, float]:
        value = metric_value(ranked_metrics(model), name)
        return math.isnan(value), -value if decreasing else value

    return sorted(models, key=key)


# --------------------------------------------------------------------------- identifying models

def fingerprint(params: dict[str, Any], x: Any, y: Any, data: str) -> str:
    """What decides a model, as H2O's parameter checksum does: every parameter but model_id (defaults
    filled in), the columns and the frames' digest `data`."""
    resolved = {name: value for name, value in parameter_table.resolve(params).items() if name not in NOT_SEARCHED}
    text = json.dumps(json_values({"params": resolved, "x": x, "y": y, "data": data}), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _manifest_path(folder: Path, grid_id: str) -> Path:
    return folder / f"{grid_id}.grid.json"


def read_manifest(folder: Path, grid_id: str) -> dict[str, str]:
    """{model_id: fingerprint} of the grid's models saved in `folder` (their files complete)."""
    path = _manifest_path(folder, grid_id)
    if not path.is_file():
        return {}
    try:
        models = json.loads(path.read_text())["models"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{str(path)!r} is not a grid manifest deepwater wrote ({error}); remove it to train the "
                             "grid afresh.") from error
    return {model_id: fp for model_id, fp in models.items() if is_saved_model(folder / model_id)}


def _write_manifest(folder: Path, grid_id: str, models: dict[str, str]) -> None:
    """Replace the manifest atomically, so a crash leaves the old one or the new one."""
    path = _manifest_path(folder, grid_id)
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.part")
    partial.write_text(json.dumps({"grid_id": grid_id, "models": models}, indent=1))
    os.replace(partial, path)


# --------------------------------------------------------------------------- the grid

@dataclass(frozen=True)
class GridFailure:
    """A combination whose model could not be built."""

    model_id: str
    hyper_parameters: dict[str, Any]
    error: str  # '<error type>: <message>'
    traceback: str


class H2OGridSearch:
    """Grid search over DeepWaterEstimator's parameters with H2O's API.

    >>> grid = H2OGridSearch(DeepWaterEstimator(epochs=2), {"hidden": [[32], [64]], "learning_rate": [0.01, 0.1]},
    ...                      search_criteria={"strategy": "RandomDiscrete", "max_models": 3, "seed": 1})
    >>> grid.train(x=predictors, y="label", training_frame=train, validation_frame=valid)   # doctest: +SKIP
    >>> print(grid.get_grid(sort_by="accuracy", decreasing=True))                          # doctest: +SKIP
    """

    def __init__(self, model: DeepWaterEstimator | type[DeepWaterEstimator], hyper_params: Mapping[str, Sequence[Any]],
                 grid_id: str | None = None, search_criteria: Mapping[str, Any] | None = None, *,
                 export_checkpoints_dir: str | os.PathLike | None = None, parallelism: int = 1) -> None:
        """`model`: a DeepWaterEstimator class or instance, whose parameters every model shares;
        `export_checkpoints_dir` (else the model's): the folder each model is saved into as it finishes;
        `parallelism`: models trained at once (1: one after another here; more, or 0 for one per CPU, as Ray
        tasks after deepwater.init())."""
        if isinstance(model, type) and issubclass(model, DeepWaterEstimator):
            model = model()
        if not isinstance(model, DeepWaterEstimator):
            raise ParameterError(f"model={model!r}: give a DeepWaterEstimator class or instance; its parameters are "
                                 "those every model of the grid shares.")
        self.model = model
        self._space = HyperSpace(hyper_params)
        self.hyper_params = dict(hyper_params)
        self.grid_id = parameter_table.any_text("grid_id", grid_id) if grid_id is not None else \
            f"Grid_DeepWater_{uuid.uuid4().hex[:8]}"
        self._criteria = parse_search_criteria(search_criteria)
        self.search_criteria = None if search_criteria is None else dict(search_criteria)
        self.export_checkpoints_dir = parameter_table.optional_text("export_checkpoints_dir", export_checkpoints_dir)
        self.parallelism = parameter_table.number(0, integer=True)("parallelism", parallelism)
        self.models: list[DeepWaterEstimator] = []
        self.failures: list[GridFailure] = []
        self._hyper_of: dict[str, dict[str, Any]] = {}
        self._sort: tuple[str | None, bool | None] = (None, None)

    # --- training -------------------------------------------------------------------------
    def train(self, x: Any = None, y: Any = None, training_frame: pd.DataFrame | None = None,
              validation_frame: pd.DataFrame | None = None, **params: Any) -> H2OGridSearch:
        """Build the grid's models on the frames (x and y as DeepWaterEstimator.train takes them); `params`
        are model parameters every model shares, like the model's own."""
        training = check_frame(training_frame, "training_frame")
        validation = None if validation_frame is None else check_frame(validation_frame, "validation_frame")
        base = self._base_params(params)
        tracked = base.pop("mlflow", False)  # the grid logs its models, as child runs of its own run
        if tracked:
            require_mlflow()
        folder = self.export_checkpoints_dir or base.get("export_checkpoints_dir")
        walk = _SearchRun(self, base, x, y, training, validation, None if folder is None else Path(folder))
        built, failures = walk.run(self._runner(training, validation))
        self._hyper_of = walk.hyper_of
        self.failures, self.models = failures, built
        self._sort_models(None, None)
        if tracked and built:
            run_ids = log_grid(self.grid_id, self.models, self.sorted_metric_table())
            for model in self.models:
                model._mlflow_run_id = run_ids.get(model.model_id, model.mlflow_run_id)
        if failures:
            warnings.warn(f"grid {self.grid_id!r}: {len(failures)} of its models could not be built; grid.failures "
                          f"says why (first: {failures[0].error}).", stacklevel=2)
        if failures and not built:
            raise DeepWaterError(f"grid {self.grid_id!r} built no model: every combination failed (first: "
                                 f"{failures[0].error}).")
        return self

    def _base_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """The model's non-default parameters and train()'s, checked; none may be a hyper-parameter too."""
        for name, value in given.items():
            parameter_table.check(name, value)
        base = {name: value for name, value in self.model.get_params().items()
                if name not in NOT_SEARCHED and parameter_table.check(name, value) !=
                parameter_table.PARAMETERS[name].default}
        base.update(given)
        if "model_id" in given:
            raise ParameterError("model_id: a grid names its models '<grid_id>_model_<n>'; name the grid with grid_id.")
        both = [name for name in self._space.names if name in base]
        if both:
            raise ParameterError(f"{', '.join(both)} is set on the model (or in train()) and is a hyper-parameter as "
                                 "well, which is ambiguous (H2O's rule): set it in one place.")
        return base

    def _runner(self, training: pd.DataFrame, validation: pd.DataFrame | None) -> Runner:
        if self.parallelism == 1:
            return InProcess(training, validation)
        if not connected():
            warnings.warn(f"parallelism={self.parallelism} runs models side by side as Ray tasks after "
                          "deepwater.init(); without it they train one after another in this process.", stacklevel=3)
        return runner(training, validation, self.parallelism)

    # --- the results ----------------------------------------------------------------------
    @property
    def model_ids(self) -> list[str]:
        return [model.model_id for model in self.models]

    @property
    def hyper_names(self) -> list[str]:
        return list(self._space.names)

    @property
    def failed_params(self) -> list[dict[str, Any]]:
        return [failure.hyper_parameters for failure in self.failures]

    @property
    def failed_raw_params(self) -> list[list[Any]]:
        return [list(failure.hyper_parameters.values()) for failure in self.failures]

    @property
    def failure_details(self) -> list[str]:
        return [failure.error for failure in self.failures]

    @property
    def failure_stack_traces(self) -> list[str]:
        return [failure.traceback for failure in self.failures]

    def __len__(self) -> int:
        return len(self.models)

    def __getitem__(self, index: int) -> DeepWaterEstimator:
        return self.models[index]

    def __iter__(self) -> Iterator[DeepWaterEstimator]:
        return iter(self.models)

    def _default_metric(self) -> str:
        return "logloss" if ranked_metrics(self.models[0]).kind == "classification" else "residual_deviance"

    def _order(self) -> tuple[str, bool]:
        """The sort metric and whether larger values come first (by default: where larger is better)."""
        name, decreasing = self._sort
        name, larger = sort_metric(name or self._default_metric())
        return name, larger if decreasing is None else decreasing

    def _sort_models(self, sort_by: str | None, decreasing: bool | None) -> None:
        """Sort `models` as get_grid() says, and keep that order for the table."""
        self._sort = (sort_by, decreasing)
        if self.models:
            self.models = _ordered(self.models, *self._order())

    def get_grid(self, sort_by: str | None = None, decreasing: bool | None = None) -> H2OGridSearch:
        """This grid with its models sorted by `sort_by` (logloss or residual_deviance by default): decreasing
        when asked, else (None) with the best first."""
        if sort_by is not None and not isinstance(sort_by, str):
            raise ParameterError(f"sort_by={sort_by!r} is not allowed: name a metric, e.g. sort_by='logloss', or "
                                 "leave it None for the default.")
        if decreasing is not None:
            decreasing = parameter_table.flag("decreasing", decreasing)
        grid = copy.copy(self)
        grid._sort_models(sort_by, decreasing)
        return grid

    def sorted_metric_table(self) -> pd.DataFrame:
        """H2O's summary table: the hyper-parameters, model_ids and the sort metric, one row per model."""
        if not self.models:
            return pd.DataFrame(columns=[*self._space.names, "model_ids"])
        name, _ = self._order()
        rows = [[*self._hyper_of[model.model_id].values(), model.model_id, metric_value(ranked_metrics(model), name)]
                for model in self.models]
        return pd.DataFrame(rows, columns=[*self._space.names, "model_ids", name])

    def _index(self, id: str | int) -> int:
        if isinstance(id, int):
            return id
        if id not in self.model_ids:
            raise ParameterError(f"{id!r} is not a model of grid {self.grid_id!r}; its models: {self.model_ids}.")
        return self.model_ids.index(id)

    def get_hyperparams_dict(self, id: str | int, display: bool = True) -> dict[str, Any]:
        """The hyper-parameters of model `id` (a model_id, or a position in `models`) as {name: value}."""
        values = self._hyper_of[self.models[self._index(id)].model_id]
        if display:
            print(f"Hyperparameters: [{', '.join(self._space.names)}]")
        return dict(values)

    def get_hyperparams(self, id: str | int, display: bool = True) -> list[Any]:
        """The hyper-parameters' values of model `id`, in hyper_params' order."""
        return list(self.get_hyperparams_dict(id, display).values())

    def predict(self, test_data: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Each model's predictions, by model_id."""
        return {model.model_id: model.predict(test_data) for model in self.models}

    def model_performance(self, test_data: pd.DataFrame | None = None, train: bool = False, valid: bool = False,
                          xval: bool = False) -> dict[str, ModelMetrics]:
        """Each model's metrics (DeepWaterEstimator.model_performance), by model_id."""
        return {model.model_id: model.model_performance(test_data, train=train, valid=valid, xval=xval)
                for model in self.models}

    def scoring_history(self) -> dict[str, pd.DataFrame]:
        """Each model's scoring history, by model_id."""
        return {model.model_id: model.scoring_history() for model in self.models}

    # --- display --------------------------------------------------------------------------
    def plot(self, metric: str | None = None, save_plot_path: str | os.PathLike | None = None) -> Figure:
        """A bar per model of `metric` (any sort_by name; by default the grid's sort metric), best first, each
        labelled with its hyper-parameters; returns the matplotlib Figure (pip install 'deepwater[plot]')."""
        if not self.models:
            raise ParameterError(f"grid {self.grid_id!r} has no models to plot; train it first (failures: "
                                 f"{len(self.failures)}).")
        grid = self.get_grid(sort_by=metric) if metric is not None else self
        return plots.grid_plot(grid.sorted_metric_table(), grid._order()[0], save_plot_path)

    def __str__(self) -> str:
        lines = ["H2O Grid Details", "================", "", f"Grid ID: {self.grid_id}", "Used hyper parameters:"]
        lines += [f"  -  {name}" for name in self._space.names]
        lines += [f"Number of models: {len(self.models)}", f"Number of failed models: {len(self.failures)}", ""]
        if self.models:
            name, decreasing = self._order()
            lines.append(f"Hyper-Parameter Search Summary: ordered by {'decreasing' if decreasing else 'increasing'} "
                         f"{name}")
            lines.append(self.sorted_metric_table().to_string())
        if self.failures:
            failed = pd.DataFrame([[*f.hyper_parameters.values(), f.model_id, f.error] for f in self.failures],
                                  columns=[*self._space.names, "model_ids", "error"])
            lines += ["", "Failed Hyperparameters and Message:", failed.to_string()]
        return "\n".join(lines)

    __repr__ = __str__

    def show(self) -> None:
        """Print the grid: its models sorted by the metric, and its failures."""
        print(self)


GridSearch = H2OGridSearch


class _SearchRun:
    """One train() of a grid: walks the hyper-space, reuses the models it already has, keeps up to the
    runner's width of jobs in flight, and stops where the search criteria say."""

    def __init__(self, grid: H2OGridSearch, base: dict[str, Any], x: Any, y: Any, training: pd.DataFrame,
                 validation: pd.DataFrame | None, folder: Path | None) -> None:
        self.grid, self.base, self.x, self.y, self.folder = grid, base, x, y, folder
        self.criteria = grid._criteria
        self.data = frame_digest(training) + frame_digest(validation)
        self.manifest = _MANIFESTS.setdefault(grid.grid_id, {})
        saved = {} if folder is None else read_manifest(folder, grid.grid_id)
        self.known = {fp: model_id for model_id, fp in {**saved, **self.manifest}.items()}
        numbers = [int(m.group(1)) for model_id in self.known.values()
                   if (m := re.fullmatch(re.escape(grid.grid_id) + r"_model_(\d+)", model_id))]
        self.numbers = itertools.count(max(numbers, default=0) + 1)
        self.seeded = self.criteria.seed >= 0 and "seed" not in base and "seed" not in grid.hyper_names
        self.hyper_of: dict[str, dict[str, Any]] = {}
        self.built: list[DeepWaterEstimator] = []
        self.failures: list[GridFailure] = []

    def run(self, run: Runner) -> tuple[list[DeepWaterEstimator], list[GridFailure]]:
        started, walk, stop = time.monotonic(), self.grid._space.walk(self.criteria), False
        pending: dict[str, tuple[dict[str, Any], str]] = {}
        while True:
            while not stop and len(run) < run.width:
                left = self.criteria.max_runtime_secs - (time.monotonic() - started)
                index = None if self._full(len(run)) or (self.criteria.max_runtime_secs and left <= 0) \
                    else next(walk, None)
                if index is None:
                    stop = True
                    break
                hyper = self.grid._space.combination(index)
                params = {**self.base, **hyper}
                if self.seeded:  # H2O seeds a RandomDiscrete grid's models from its search seed
                    params["seed"] = (self.criteria.seed + index) % 2**32
                fp = fingerprint(params, self.x, self.y, self.data)
                existing = self._existing(self.known.get(fp))
                if existing is not None:
                    stop = self._keep(existing, hyper, fp)
                    continue
                model_id = f"{self.grid.grid_id}_model_{next(self.numbers)}"
                if self.criteria.max_runtime_secs:  # no model may outlast the grid's time
                    params["max_runtime_secs"] = min(params.get("max_runtime_secs") or left, left)
                pending[model_id] = (hyper, fp)
                run.submit(Job(type(self.grid.model), {**params, "model_id": model_id}, self.x, self.y))
            if not len(run):
                return self.built, self.failures
            job, outcome = run.next_done()
            hyper, fp = pending.pop(job.model_id)
            if isinstance(outcome, Failure):
                self.failures.append(GridFailure(job.model_id, hyper, outcome.message, outcome.traceback))
            else:
                stop = self._keep(outcome, hyper, fp) or stop

    def _full(self, in_flight: int) -> bool:
        return bool(self.criteria.max_models) and len(self.built) + in_flight >= self.criteria.max_models

    def _existing(self, model_id: str | None) -> DeepWaterEstimator | None:
        """The grid's model `model_id` from this process, or from the export folder; None if it has neither."""
        if model_id is None:
            return None
        if model_id in held() and model_id in self.manifest:
            return get_model(model_id)
        if self.folder is not None and is_saved_model(self.folder / model_id):
            return load_model(self.folder / model_id)
        return None

    def _keep(self, model: DeepWaterEstimator, hyper: dict[str, Any], fp: str) -> bool:
        """Add `model` to the grid (saving it and the manifest into the export folder unless it is there);
        True when the search criteria's early stopping says the walk is over."""
        self.built.append(model)
        self.hyper_of[model.model_id] = hyper
        self.manifest[model.model_id] = fp
        if self.folder is not None and not is_saved_model(self.folder / model.model_id):
            save_model(model, self.folder, force=True)
            _write_manifest(self.folder, self.grid.grid_id, {**read_manifest(self.folder, self.grid.grid_id),
                                                             model.model_id: fp})
        return self._stops_early()

    def _stops_early(self) -> bool:
        """H2O's rule: the models so far, worst to best by stopping_metric, as a scoring history."""
        rounds = self.criteria.stopping_rounds
        if not rounds:
            return False
        metric = self.criteria.stopping_metric
        if metric == "AUTO":
            metric = "logloss" if ranked_metrics(self.built[0]).kind == "classification" else "deviance"
        name, larger = sort_metric(metric)
        values = [value for value in (metric_value(ranked_metrics(m), name) for m in self.built)
                  if not math.isnan(value)]
        return should_stop(sorted(values, reverse=not larger), rounds, self.criteria.stopping_tolerance, larger)
