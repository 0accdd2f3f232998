"""A new user's bad or unusual inputs across the API, the CLI and the service: each gets a deepwater error class (or a
4xx naming the field, or exit status 2 with one stderr line) whose message names the culprit and a fix."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import make_blobs, make_linear
from deepwater.cli import main
from deepwater.errors import DeviceError, FrameError, ModelFileError, NotFittedError, ParameterError

pytest.importorskip("torch")
TINY = {"hidden": [4], "epochs": 1, "gpu": False, "quiet_mode": True, "backend": "torch", "seed": 1}
NAN, INF = float("nan"), float("inf")
ONE_OF = "use one of"


@pytest.mark.parametrize("params, regex", [
    ({"epochs": None}, r"epochs=None .*number >= 0"), ({"epochs": True}, r"epochs=True .*number >= 0"),
    ({"epochs": -1}, r"epochs=-1 .*number >= 0"), ({"epochs": NAN}, r"epochs=nan .*number >= 0"),
    ({"epochs": INF}, r"epochs=inf .*max_runtime_secs"), ({"epochs": "ten"}, r"epochs='ten' .*number"),
    ({"epochs": "2"}, r"epochs='2' .*number"), ({"epochs": [1]}, r"epochs=\[1\] .*number"),
    ({"epochs": {}}, r"epochs=\{\} .*number"), ({"hidden": []}, r"hidden=\[\] .*at least 1"),
    ({"hidden": None}, r"hidden=None .*list"), ({"hidden": [0]}, r"hidden\[0\]=0 .*integer >= 1"),
    ({"hidden": [-1]}, r"hidden\[0\]=-1 .*integer >= 1"), ({"hidden": [4.5]}, r"hidden\[0\]=4.5 .*integer"),
    ({"hidden": ["4"]}, r"hidden\[0\]='4' .*integer"), ({"hidden": [True]}, r"hidden\[0\]=True .*integer"),
    ({"hidden": {"a": 1}}, r"hidden=\{'a': 1\} .*list"), ({"hidden": "4,4"}, r"hidden='4,4' .*list"),
    ({"activation": "relu"}, r"activation='relu' .*Rectifier"),
    ({"activation": "Rectifer"}, r"activation='Rectifer' .*Did you mean 'Rectifier'\?"),
    ({"activation": None}, r"activation=None .*" + ONE_OF), ({"activation": 1}, r"activation=1 .*" + ONE_OF),
    ({"epoch": 1}, r"unknown parameter 'epoch'. Did you mean epochs"), ({"hiden": [4]}, r"'hiden'. Did you mean hidden"),
    ({"learningrate": 0.1}, r"'learningrate'. Did you mean learning_rate"), ({"foo": 1}, r"'foo'.*PARAMETERS"),
    ({"learning_rate": 0}, r"learning_rate=0 .*> 0"), ({"learning_rate": -0.1}, r"learning_rate=-0.1 .*> 0"),
    ({"learning_rate": NAN}, r"learning_rate=nan"), ({"learning_rate": "fast"}, r"learning_rate='fast'"),
    ({"mini_batch_size": 0}, r"mini_batch_size=0 .*integer >= 1"), ({"mini_batch_size": 2.5}, r"mini_batch_size=2.5"),
    ({"mini_batch_size": True}, r"mini_batch_size=True"), ({"mini_batch_size": -8}, r"mini_batch_size=-8"),
    ({"input_dropout_ratio": 1.5}, r"input_dropout_ratio=1.5 .*< 1"), ({"input_dropout_ratio": -0.1}, r"input_dropout_ratio=-0.1"),
    ({"input_dropout_ratio": 1}, r"input_dropout_ratio=1 .*< 1"), ({"hidden_dropout_ratios": [2.0]}, r"hidden_dropout_ratios\[0\]=2.0"),
    ({"rho": 2}, r"rho=2 .*< 1"), ({"epsilon": -1}, r"epsilon=-1 .*> 0"), ({"momentum_start": 1.5}, r"momentum_start=1.5"),
    ({"l1": -1}, r"l1=-1 .*>= 0"), ({"l2": NAN}, r"l2=nan"), ({"clip_gradient": -1}, r"clip_gradient=-1 .*or None"),
    ({"distribution": "poisson"}, r"distribution='poisson' .*gaussian"), ({"distribution": "gausian"}, r"distribution='gausian'"),
    ({"loss": "mse"}, r"loss='mse' .*Quadratic"), ({"stopping_rounds": -1}, r"stopping_rounds=-1"),
    ({"stopping_rounds": 1.5}, r"stopping_rounds=1.5 .*integer"), ({"stopping_metric": "accuracy"}, r"stopping_metric='accuracy'.*logloss"),
    ({"stopping_tolerance": -1}, r"stopping_tolerance=-1"), ({"score_interval": -1}, r"score_interval=-1"),
    ({"score_duty_cycle": 2}, r"score_duty_cycle=2 .*<= 1"), ({"score_training_samples": -1}, r"score_training_samples=-1"),
    ({"train_samples_per_iteration": -3}, r"train_samples_per_iteration=-3 .*>= -2"), ({"max_runtime_secs": -1}, r"max_runtime_secs=-1"),
    ({"seed": 1.5}, r"seed=1.5 .*4294967295"), ({"seed": "abc"}, r"seed='abc'"), ({"seed": -2}, r"seed=-2 .*>= -1"),
    ({"seed": 2**70}, r"seed=1180591620717411303424"), ({"seed": None}, r"seed=None"),
    ({"gpu": "yes"}, r"gpu='yes' .*True or False"), ({"gpu": 1}, r"gpu=1 .*True or False"), ({"gpu": None}, r"gpu=None"),
    ({"quiet_mode": "true"}, r"quiet_mode='true' .*True or False"), ({"device_id": [-1]}, r"device_id\[0\]=-1 .*>= 0"),
    ({"device_id": ["cuda"]}, r"device_id\[0\]='cuda'"), ({"device_id": []}, r"device_id=\[\] .*at least 1"),
    ({"num_workers": -1}, r"num_workers=-1"), ({"precision": "fp8"}, r"precision='fp8' .*bfloat16"),
    ({"precision": "bf16"}, r"precision='bf16' .*bfloat16"), ({"compile": "yes"}, r"compile='yes' .*True or False"),
    ({"image_shape": [28]}, r"image_shape=\[28\] .*at least 2"), ({"image_shape": [28, 28, 3]}, r"image_shape=\[28, 28, 3\] .*\[height, width\]"),
    ({"image_shape": [-1, 28]}, r"image_shape\[0\]=-1"), ({"image_shape": "28x28"}, r"image_shape='28x28'"),
    ({"image_shape": 28}, r"image_shape=\[28\]"), ({"channels": 2}, r"channels=2 .*1 \(grey\) or 3 \(RGB\)"),
    ({"channels": 0}, r"channels=0"), ({"channels": "rgb"}, r"channels='rgb'"), ({"bad_images": "ignore"}, r"bad_images='ignore' .*skip"),
    ({"augment": "spin"}, r"'spin' is not an augmentation.*flip"), ({"augment": 5}, r"augment=5 .*flip"),
    ({"image_cache_mb": -1}, r"image_cache_mb=-1"), ({"standardize": "no"}, r"standardize='no'"),
    ({"categorical_encoding": "onehot"}, r"categorical_encoding='onehot' .*OneHotInternal"),
    ({"categorical_encoding": "Enum"}, r"categorical_encoding='Enum'"), ({"max_categorical_features": 0}, r"max_categorical_features=0"),
    ({"weights_column": 5}, r"weights_column=5 .*string or None"), ({"nfolds": 1}, r"nfolds=1 .*2 or more"),
    ({"nfolds": -1}, r"nfolds=-1"), ({"nfolds": 2.5}, r"nfolds=2.5"), ({"nfolds": "3"}, r"nfolds='3'"),
    ({"fold_assignment": "Stratifed"}, r"fold_assignment='Stratifed' .*Did you mean 'Stratified'\?"),
    ({"fold_column": 1}, r"fold_column=1"),
    ({"checkpoint": 5}, r"checkpoint=5 .*model_id"), ({"export_checkpoints_keep": 0}, r"export_checkpoints_keep=0"),
    ({"backend": "pytorch"}, r"backend='pytorch' .*'torch'"), ({"backend": "tensorflw"}, r"backend='tensorflw' .*'tensorflow'"),
    ({"backend": None}, r"backend=None .*non-empty string"), ({"backend": 1}, r"backend=1"),
    ({"network": "lenett"}, r"network='lenett' .*'lenet'"), ({"network": None}, r"network=None"),
    ({"problem_type": "images"}, r"problem_type='images' .*'image'"), ({"model_id": 5}, r"model_id=5 .*string"),
    ({"replace_output_layer": "x"}, r"replace_output_layer='x'"), ({"autoencoder": 1}, r"autoencoder=1 .*True or False"),
    ({"learning_rate_annealing": -1}, r"learning_rate_annealing=-1"), ({"mean_image_file": 5}, r"mean_image_file=5"),
    ({"network_definition_file": 3}, r"network_definition_file=3"),
    ({"mini_batch_size": 10**20}, r"mini_batch_size=100000000000000000000 .*at most 2\*\*31 - 1.*32-bit"),
    ({"epochs": 1e300}, r"epochs=1e\+300 .*up to 1e9 .*float\('inf'\) with max_runtime_secs"),
    ({"model_id": ""}, r"model_id='' .*non-empty string without '/'"),
    ({"model_id": "../m"}, r"model_id='../m' .*not be a path"),
], ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_constructor_refuses_bad_parameter(params, regex):
    with pytest.raises(ParameterError, match=regex):
        dw.DeepWaterEstimator(**params)


@pytest.mark.parametrize("how", ["setattr", "set_params"])
@pytest.mark.parametrize("name, value, regex", [("epochs", -1, r"epochs=-1"), ("epochz", 1, r"Did you mean epochs")])
def test_assignment_is_checked_like_the_constructor(how, name, value, regex):
    model = dw.DeepWaterEstimator(hidden=[4])
    with pytest.raises(ParameterError, match=regex):
        setattr(model, name, value) if how == "setattr" else model.set_params(**{name: value})


def _with_x1(values):
    return lambda f: f.assign(x1=values(f))


@pytest.mark.parametrize("kwargs, extra, error, regex", [
    ({"y": "lable"}, {}, FrameError, r"y='lable'.*Did you mean 'label'"),
    ({"y": None}, {}, ParameterError, r"y=None: name the response column"),
    ({"y": 99}, {}, FrameError, r"y=99 is out of range.*positions 0..3"),
    ({"y": 1.5}, {}, FrameError, r"y=1.5 is not a column"),
    ({"y": True}, {}, ParameterError, r"y=True is not a column; use a column name or position"),
    ({"x": ["x3"]}, {}, FrameError, r"\['x3'\]; check the names"),
    ({"x": ["x1", "X2"]}, {}, FrameError, r"\['X2'\]; check the names"),
    ({"x": []}, {}, ParameterError, r"x selects no columns; give at least one"),
    ({"x": ["x1", "label"]}, {}, ParameterError, r"y='label' is also in x"),
    ({"x": [10]}, {}, FrameError, r"x=10 is out of range"),
    ({"x": [None]}, {}, FrameError, r"x=None is not a column"),
    ({"x": {"x1": 1}}, {}, ParameterError, r"x=\{'x1': 1\} is not allowed: give a list of column names.*order"),
    ({"x": {"x1", "x2"}}, {}, ParameterError, r"x=\{.*\} is not allowed: give a list of column names"),
    ({"training_frame": None}, {}, FrameError, r"training_frame must be a pandas DataFrame, got NoneType.*import_file"),
    ({"training_frame": "ndarray"}, {}, FrameError, r"got ndarray"),
    ({"training_frame": "dict"}, {}, FrameError, r"got dict"),
    ({"training_frame": "/tmp/x.csv"}, {}, FrameError, r"got str.*import_file"),
    ({"training_frame": "empty"}, {}, FrameError, r"training_frame is empty \(0 rows, 4 columns\); give it data"),
    ({"training_frame": "no columns"}, {}, FrameError, r"empty \(0 rows, 0 columns\)"),
    ({"training_frame": "one row"}, {}, FrameError, r"y='label' has a single class"),
    ({"training_frame": "only y"}, {}, ParameterError, r"x selects no columns"),
    ({"training_frame": "y all missing"}, {}, FrameError, r"y='label' has 60 missing.*dropna"),
    ({"training_frame": "one class"}, {}, FrameError, r"single class \['a'\].*at least two"),
    ({"training_frame": "inf"}, {}, FrameError, r"column 'x1' holds inf at row 0.*drop those rows"),
    ({"training_frame": "-inf"}, {}, FrameError, r"column 'x1' holds -inf at row 5"),
    ({"training_frame": "1e39"}, {}, FrameError, r"column 'x1' holds 1e\+39.*float32"),
    ({"training_frame": "list cells"}, {}, FrameError, r"column 'x1' holds list values.*expand"),
    ({"training_frame": "dict cells"}, {}, FrameError, r"column 'x1' holds dict values"),
    ({"training_frame": "duplicate"}, {}, FrameError, r"duplicate column names \['x1'\].*rename"),
    ({"training_frame": "text in numbers"}, {}, FrameError, r"column 'x1' mixes numbers and text: 'a' at row 3.*to_numeric"),
    ({"validation_frame": "no y"}, {}, FrameError, r"no response column 'label'; add it"),
    ({"validation_frame": "no x1"}, {}, FrameError, r"lacks columns.*\['x1'\]; add them"),
    ({"validation_frame": "empty"}, {}, FrameError, r"validation_frame is empty"),
    ({"validation_frame": "ndarray"}, {}, FrameError, r"validation_frame must be a pandas DataFrame"),
    ({}, {"weights_column": "w"}, FrameError, r"weights_column='w' is not a column"),
    ({"training_frame": "negative w"}, {"weights_column": "w"}, FrameError, r"weights_column='w'.*weights must be >= 0"),
    ({"training_frame": "nan w"}, {"weights_column": "w"}, FrameError, r"weights_column='w' holds missing"),
    ({}, {"fold_column": "fold"}, FrameError, r"fold_column='fold' is not a column"),
    ({"training_frame": "fold"}, {"fold_column": "fold", "nfolds": 2}, ParameterError, r"fold_column='fold' and nfolds=2.*one of them"),
    ({"training_frame": "one fold"}, {"fold_column": "fold"}, FrameError, r"holds one fold.*at least two"),
    ({"training_frame": "5 rows"}, {"nfolds": 10}, ParameterError, r"nfolds=10 is more than the 5 rows.*nfolds=5"),
    ({}, {"checkpoint": "no_such_model"}, ParameterError, r"checkpoint='no_such_model'.*deepwater.ls\(\)"),
    ({}, {"checkpoint": "/no/such/dir"}, ParameterError, r"checkpoint='/no/such/dir'.*save_model"),
    ({}, {"pretrained_autoencoder": "no_such_model"}, ParameterError, r"pretrained_autoencoder='no_such_model'"),
    ({}, {"network": "resnet"}, FrameError, r"image network on a dataset frame.*image_shape"),
    ({}, {"network": "lenet"}, FrameError, r"image_shape=\[28, 28\]"),
    ({}, {"problem_type": "image"}, ParameterError, r"problem_type='image' needs.*image paths.*URI column first"),
    ({}, {"network": "user"}, ParameterError, r"network='user' needs network_definition_file"),
    ({}, {"network": "user", "network_definition_file": "/no/g.onnx"}, ModelFileError, r"'/no/g.onnx': no such file"),
    ({}, {"distribution": "bernoulli"}, ParameterError, r"distribution='bernoulli' needs 2 classes.*multinomial"),
    ({}, {"distribution": "gaussian"}, ParameterError, r"distribution='gaussian' does not fit a classification"),
    ({}, {"stopping_metric": "AUC", "stopping_rounds": 1}, ParameterError, r"stopping_metric='AUC' needs two classes.*logloss"),
    ({}, {"hidden_dropout_ratios": [0.1, 0.2]}, ParameterError, r"hidden_dropout_ratios=\[0.1, 0.2\].*one ratio per hidden"),
], ids=lambda v: repr(v)[:60] if isinstance(v, dict) else "")
def test_train_refuses_bad_input(kwargs, extra, error, regex):
    frames = {
        "ndarray": lambda: make_blobs(60).to_numpy(), "dict": lambda: make_blobs(60).to_dict(),
        "/tmp/x.csv": lambda: "/tmp/x.csv", "empty": lambda: make_blobs(60).iloc[:0], "no columns": pd.DataFrame,
        "one row": lambda: make_blobs(60).iloc[:1], "only y": lambda: make_blobs(60)[["label"]],
        "y all missing": _blobs_lambda(lambda f: f.assign(label=pd.Categorical([None] * 60, categories=["a", "b"]))),
        "one class": _blobs_lambda(lambda f: f.assign(label=pd.Categorical(["a"] * 60))),
        "inf": _blobs_lambda(_with_x1(lambda f: np.r_[np.inf, f.x1[1:]])),
        "-inf": _blobs_lambda(_with_x1(lambda f: np.r_[f.x1[:5], -np.inf, f.x1[6:]])),
        "1e39": _blobs_lambda(_with_x1(lambda f: np.r_[1e39, f.x1[1:]])),
        "list cells": _blobs_lambda(_with_x1(lambda f: [[1]] * 60)),
        "dict cells": _blobs_lambda(_with_x1(lambda f: [{"a": 1}] * 60)),
        "duplicate": _blobs_lambda(lambda f: pd.concat([f, f[["x1"]]], axis=1)),
        "text in numbers": _blobs_lambda(_with_x1(lambda f: ["a" if i == 3 else v for i, v in enumerate(f.x1)])),
        "negative w": _blobs_lambda(lambda f: f.assign(w=-1.0)), "nan w": _blobs_lambda(lambda f: f.assign(w=np.nan)),
        "fold": _blobs_lambda(lambda f: f.assign(fold=np.arange(60) % 2)),
        "one fold": _blobs_lambda(lambda f: f.assign(fold=1)), "5 rows": lambda: make_blobs(60).head(5),
    }
    valids = {"no y": lambda: make_blobs(60).drop(columns="label"), "no x1": lambda: make_blobs(60).drop(columns="x1"),
              "empty": lambda: make_blobs(60).iloc[:0], "ndarray": lambda: make_blobs(60).to_numpy()}
    call = {"y": "label", "training_frame": make_blobs(60), **kwargs}
    if isinstance(call["training_frame"], str):
        call["training_frame"] = frames[call["training_frame"]]()
    if isinstance(call.get("validation_frame"), str):
        call["validation_frame"] = valids[call["validation_frame"]]()
    with pytest.raises(error, match=regex):
        dw.DeepWaterEstimator(**{**TINY, **extra}).train(**call)


def _blobs_lambda(change):
    return lambda: change(make_blobs(60))


@pytest.mark.parametrize("params, regex", [
    ({"distribution": "multinomial"}, r"distribution='multinomial' does not fit a regression"),
    ({"loss": "CrossEntropy"}, r"loss='CrossEntropy' does not fit a regression.*Automatic"),
], ids=["multinomial_on_regression", "crossentropy_on_regression"])
def test_regression_refuses_classification_settings(params, regex):
    with pytest.raises(ParameterError, match=regex):
        dw.DeepWaterEstimator(**TINY, **params).train(y="y", training_frame=make_linear(60))


@pytest.mark.parametrize("change, regex", [
    (lambda f: f.assign(y=np.r_[np.inf, f.y[1:]]), r"y='y' holds inf at row 0"),
    (lambda f: f.assign(y=np.nan), r"y='y' has 60 missing"),
], ids=["inf_response", "all_missing_response"])
def test_a_bad_numeric_response_is_named(change, regex):
    with pytest.raises(FrameError, match=regex):
        dw.DeepWaterEstimator(**TINY).train(y="y", training_frame=change(make_linear(60)))


def test_exploding_training_is_a_divergence_error():
    frame = make_linear(60).assign(a=lambda d: d.a * 1e30)
    model = dw.DeepWaterEstimator(**{**TINY, "learning_rate": 1e30, "clip_gradient": None, "epochs": 3,
                                     "standardize": False})
    with pytest.raises(dw.errors.DivergenceError, match=r"diverged.*Lower learning_rate"):
        model.train(y="y", training_frame=frame)


def test_missing_image_files_are_an_image_error():
    frame = make_blobs(60).assign(u="/no/such/none.png")
    model = dw.DeepWaterEstimator(**TINY, problem_type="image", network="lenet", image_shape=[16, 16], channels=1)
    with pytest.raises(dw.errors.ImageError, match=r"'/no/such/none.png' \(row 0\): file not found.*bad_images='skip'"):
        model.train(x=["u"], y="label", training_frame=frame)


@pytest.mark.parametrize("call", [
    lambda m: m.predict(make_blobs(10)), lambda m: m.model_performance(make_blobs(10)), lambda m: m.varimp(),
    lambda m: m.export("/tmp/never"), lambda m: m.deepfeatures(make_blobs(10), 0), lambda m: m.scoring_history(),
    lambda m: m.summary(), lambda m: dw.save_model(m, "/tmp/never"),
], ids=["predict", "model_performance", "varimp", "export", "deepfeatures", "scoring_history", "summary", "save_model"])
def test_an_untrained_model_says_train_first(call):
    with pytest.raises(NotFittedError, match=r"not trained.*call train\(\.\.\.\) first"):
        call(dw.DeepWaterEstimator())


@pytest.fixture(scope="module")
def trained():
    frame = make_blobs(60)
    return dw.DeepWaterEstimator(**TINY).train(y="label", training_frame=frame), frame


X = make_blobs(60).drop(columns="label")


@pytest.mark.parametrize("call, error, regex", [
    (lambda m: m.predict(None), FrameError, r"frame must be a pandas DataFrame, got NoneType"),
    (lambda m: m.predict(X.to_numpy()), FrameError, r"got ndarray"),
    (lambda m: m.predict(X.to_dict()), FrameError, r"got dict"),
    (lambda m: m.predict(X.iloc[0]), FrameError, r"got Series"),
    (lambda m: m.predict(X.iloc[:0]), FrameError, r"frame is empty.*give it data"),
    (lambda m: m.predict(X.drop(columns="x2")), FrameError, r"lacks columns.*\['x2'\]; add them"),
    (lambda m: m.predict(X.rename(columns={"x2": "X2"})), FrameError, r"\['x2'\]; add them"),
    (lambda m: m.predict(X.assign(x1="abc")), FrameError, r"column 'x1' is numeric in the model but holds text.*'abc'"),
    (lambda m: m.predict(X.assign(x1=[[1]] * 60)), FrameError, r"column 'x1' holds list values"),
    (lambda m: m.predict(pd.concat([X, X[["x1"]]], axis=1)), FrameError, r"duplicate column names \['x1'\]"),
    (lambda m: m.model_performance(train=True, valid=True), ParameterError, r"conflict.*one at a time"),
    (lambda m: m.model_performance(make_blobs(60), train=True), ParameterError, r"model_performance\(frame, train=True\)"),
    (lambda m: m.model_performance(X), FrameError, r"no response column 'label'"),
    (lambda m: m.model_performance(make_blobs(60).assign(label=pd.Categorical(["z"] * 60))), FrameError,
     r"classes the model never saw.*\['z'\]"),
    (lambda m: m.model_performance(make_blobs(60).iloc[:0]), FrameError, r"frame is empty"),
    (lambda m: m.model_performance(make_blobs(60).assign(x1=np.inf)), FrameError, r"column 'x1' holds inf"),
    (lambda m: m.model_performance(make_blobs(60).to_numpy()), FrameError, r"must be a pandas DataFrame"),
    (lambda m: m.model_performance(make_blobs(60)).F1(), ParameterError, r"F1\(\) is a binomial metric.*logloss"),
    (lambda m: m.deepfeatures(X, 99), ParameterError, r"layer=99 is not a hidden layer.*model.layers\(\)"),
    (lambda m: m.deepfeatures(X, -99), ParameterError, r"layer=-99"),
    (lambda m: m.deepfeatures(X, "hiden_0"), ParameterError, r"layer='hiden_0'.*'fc1'"),
    (lambda m: m.deepfeatures(X, None), ParameterError, r"layer=None"),
    (lambda m: m.deepfeatures(X, 1.5), ParameterError, r"layer=1.5"),
    (lambda m: m.deepfeatures(X, True), ParameterError, r"layer=True"),
    (lambda m: m.deepfeatures(X.iloc[:0], 0), FrameError, r"frame is empty"),
    (lambda m: m.deepfeatures(X.drop(columns="x1"), 0), FrameError, r"\['x1'\]; add them"),
    (lambda m: m.export("/tmp/dw_probe_never", format="tflite"), ParameterError, r"format='tflite'.*format='onnx'"),
    (lambda m: m.export("/tmp/dw_probe_never", format=None), ParameterError, r"format=None"),
    (lambda m: m.export("/tmp/dw_probe_never", layers=["nope"]), ParameterError, r"layer='nope'.*model.layers\(\)"),
    (lambda m: m.export("/tmp/dw_probe_never", layers=[99]), ParameterError, r"layer=99 is out of range.*0..2"),
    (lambda m: m.anomaly(X), ParameterError, r"anomaly\(\) needs an autoencoder.*autoencoder=True"),
    (lambda m: m.plot(metric="acc"), ParameterError, r"metric='acc'.*logloss"),
    (lambda m: m.plot(timestep="hours"), ParameterError, r"timestep='hours'.*epochs"),
    (lambda m: m.predict(X.rename(columns={"x1": "x_1"})), FrameError,
     r"lacks columns .*\['x1'\]; add them. Did you mean 'x_1' for 'x1'\? "
     r"Rename it: frame.rename\(columns=\{'x_1': 'x1'\}\)"),
    (lambda m: m.model_performance(make_blobs(60)).auc(), ParameterError,
     r"auc\(\) needs a binomial model .*metrics of a multinomial model \(3 classes\); ask for one they hold: "
     r"logloss\(\)"),
    (lambda m: m.model_performance(train="yes"), ParameterError, r"train='yes' is not allowed: use True or False"),
    (lambda m: m.model_performance(valid=1), ParameterError, r"valid=1 is not allowed: use True or False"),
    (lambda m: m.varimp(use_pandas="no"), ParameterError, r"use_pandas='no' is not allowed: use True or False"),
    (lambda m: m.varimp(by_column=1), ParameterError, r"by_column=1 is not allowed: use True or False"),
], ids=["predict_None", "predict_ndarray", "predict_dict", "predict_series", "predict_empty", "predict_missing_col",
        "predict_renamed_col", "predict_text_in_numeric", "predict_list_cells", "predict_duplicate_cols",
        "perf_train_and_valid", "perf_frame_and_train", "perf_no_response", "perf_unseen_class", "perf_empty",
        "perf_inf", "perf_ndarray", "perf_F1_on_three_classes", "deepfeatures_layer_99", "deepfeatures_layer_-99",
        "deepfeatures_layer_typo", "deepfeatures_layer_None", "deepfeatures_layer_float", "deepfeatures_layer_bool",
        "deepfeatures_empty", "deepfeatures_missing_col", "export_tflite", "export_format_None",
        "export_unknown_layer", "export_layer_99", "anomaly_on_classifier", "plot_metric", "plot_timestep",
        "predict_column_renamed", "perf_auc_on_three_classes", "perf_train_str", "perf_valid_int",
        "varimp_use_pandas_str", "varimp_by_column_int"])
def test_trained_model_refuses_bad_input(trained, call, error, regex):
    with pytest.raises(error, match=regex):
        call(trained[0])


def test_exporting_or_saving_over_an_existing_path_asks_for_force(trained, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ParameterError, match=r"already exists; pass force=True"):
        trained[0].export(tmp_path / "afile")
    saved = dw.save_model(trained[0], str(tmp_path / "sm"))
    with pytest.raises(ParameterError, match=r"already exists; pass force=True"):
        dw.save_model(trained[0], str(tmp_path / "sm"))
    with pytest.raises(ParameterError, match=r"backend='pytorch' is not a known backend.*'torch'"):
        dw.load_model(saved, backend="pytorch")


@pytest.mark.parametrize("name, content, regex", [
    ("missing.csv", None, r"does not exist; check the path"),
    ("empty.csv", b"", r"is empty \(0 bytes.*header line"),
    ("header.csv", b"a,b\n", r"has a header \(2 columns: 'a', 'b'\) but no rows"),
    ("ragged.csv", b"a,b\n1,2\n3,4,5\n", r"line 3 has 3 fields where the header has 2"),
    ("binary.csv", bytes(range(256)) * 4, r"is a binary file.*UTF-8 text csv"),
    ("table.txt", b"a,b\n1,2\n", r"suffix import_file cannot read; use .csv"),
    ("table.json", b"{}", r"suffix import_file cannot read"),
    ("bad.parquet", b"notparquet", r"not a readable parquet file"),
    ("bad.csv.gz", b"notgzip", r"not a readable gzip file.*compress it with gzip"),
    ("folder", "dir", r"folder without images in class subfolders.*class/file.png"),
], ids=lambda v: v if isinstance(v, str) and "." in v or v == "folder" else "")
def test_import_file_refuses_bad_files(tmp_path, name, content, regex):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(FrameError, match=regex):
        dw.import_file(str(path))


@pytest.mark.parametrize("make, backend, error, regex", [
    (lambda p: p / "none", None, ModelFileError, r"no such saved model"),
    (lambda p: (p / "a.csv").write_text("x") and p / "a.csv", None, ModelFileError, r"not a deepwater saved model.*save_model"),
    (lambda p: (p / "d").mkdir() or p / "d", None, ModelFileError, r"folder with no saved model"),
], ids=["missing", "a_csv_file", "empty_folder"])
def test_load_model_refuses_bad_paths(tmp_path, make, backend, error, regex):
    with pytest.raises(error, match=regex):
        dw.load_model(str(make(tmp_path)), backend=backend)


A = np.random.default_rng(0).normal(size=(5, 3))
B = np.random.default_rng(1).normal(size=(4, 3))


@pytest.mark.parametrize("call, error, regex", [
    (lambda: dw.distance(A, B, "l3"), ParameterError, r"measure='l3'.*'l1', 'l2'"),
    (lambda: dw.distance(A, B, "cosin"), ParameterError, r"measure='cosin'.*'cosine'"),
    (lambda: dw.distance(A, B, None), ParameterError, r"measure=None"),
    (lambda: dw.distance(A, B[:, :2]), FrameError, r"X has 3 columns but Y has 2.*Y\[X.columns\]"),
    (lambda: dw.distance(A[0], B), FrameError, r"X must be 2-D.*reshape"),
    (lambda: dw.distance(A[None], B), FrameError, r"shape \(1, 5, 3\)"),
    (lambda: dw.distance(A[:0], B), FrameError, r"X is empty"),
    (lambda: dw.distance(A, B[:0]), FrameError, r"Y is empty"),
    (lambda: dw.distance(np.where(A > 1, np.nan, A), B), FrameError, r"missing \(NaN\) or infinite.*dropna"),
    (lambda: dw.distance(np.where(A > 1, np.inf, A), B), FrameError, r"infinite values in 1 row"),
    (lambda: dw.distance(np.array([["a", "b", "c"]]), B), FrameError, r"not numeric; convert it"),
    (lambda: dw.distance(None, B), FrameError, r"got NoneType"),
    (lambda: dw.distance(make_blobs(9), make_blobs(9)), FrameError, r"'colour', 'label'; distances need numbers"),
    (lambda: dw.distance(A, B, block_rows=0), ParameterError, r"block_rows=0 .*whole number >= 1"),
    (lambda: dw.distance(A, B, block_rows=-1), ParameterError, r"block_rows=-1"),
    (lambda: dw.distance(A, B, block_rows=1.5), ParameterError, r"block_rows=1.5"),
    (lambda: dw.distance(A, B, device="gpu"), ParameterError, r"device='gpu' is not a device.*'cuda:0'"),
    (lambda: dw.distance(A, B, device=5), ParameterError, r"device=5"),
    (lambda: dw.distance(A, B, dtype="int8"), ParameterError, r"dtype='int8'.*'float32' or 'float64'"),
    (lambda: dw.distance(A, B, dtype="float33"), ParameterError, r"dtype='float33'"),
    (lambda: dw.distance(A, B, out="/tmp"), ParameterError, r"out='/tmp' must end in '.npy'"),
    (lambda: dw.nearest(A, B, 0), ParameterError, r"k=0 must be a whole number >= 1"),
    (lambda: dw.nearest(A, B, -1), ParameterError, r"k=-1"),
    (lambda: dw.nearest(A, B, 1.5), ParameterError, r"k=1.5"),
    (lambda: dw.nearest(A, B, True), ParameterError, r"k=True"),
    (lambda: dw.nearest(A, B, "2"), ParameterError, r"k='2'"),
    (lambda: dw.nearest(A, B, None), ParameterError, r"k=None"),
    (lambda: dw.nearest(A, B, 2, "L2"), ParameterError, r"measure='L2'"),
    (lambda: dw.nearest(A, B, 2, "cosine_sqr"), ParameterError, r"measure='cosine_sqr'.*'cosine_sq'"),
    (lambda: dw.nearest(A, B[:, :2], 2), FrameError, r"3 columns but Y has 2"),
    (lambda: dw.nearest(A, B[:0], 2), FrameError, r"Y is empty"),
    (lambda: pd.DataFrame(A).dw.distance(pd.DataFrame(B), "l5"), ParameterError, r"measure='l5'"),
    (lambda: dw.distance(pd.DataFrame(A, columns=["a", "b", "c"]), pd.DataFrame(B, columns=["a", "b", "d"])),
     FrameError, r"only in X: \['c'\]; only in Y: \['d'\].*Y\[X.columns\].*set_axis"),
], ids=["measure_l3", "measure_cosin", "measure_None", "columns_differ", "1d", "3d", "empty_X", "empty_Y", "nan", "inf",
        "strings", "None", "categorical_frames", "block_rows_0", "block_rows_neg", "block_rows_float", "device_gpu",
        "device_int", "dtype_int8", "dtype_typo", "out_not_npy", "k_0", "k_neg", "k_float", "k_bool", "k_str", "k_None",
        "nearest_measure_case", "nearest_measure_typo", "nearest_columns_differ", "nearest_empty_Y", "accessor_measure",
        "column_names_differ"])
def test_distance_and_nearest_refuse_bad_input(call, error, regex):
    with pytest.raises(error, match=regex):
        call()


def test_distance_on_a_missing_gpu_is_a_device_error():
    with pytest.raises(DeviceError, match=r"device='cuda:5'.*device=None"):
        dw.distance(A, B, device="cuda:5")


GRID_BASE = {k: v for k, v in TINY.items() if k != "hidden"}


@pytest.mark.parametrize("hyper, criteria, regex", [
    ([("hidden", [[4]])], None, r"give a dict of parameter names"),
    ({}, None, r"hyper_params=\{\}: give a dict"),
    ({"hiden": [[4]]}, None, r"unknown parameter 'hiden'. Did you mean hidden"),
    ({"epochs": [1, -1]}, None, r"hyper_params\['epochs'\]\[1\].*epochs=-1"),
    ({"epochs": 1}, None, r"hyper_params\['epochs'\]=1: give a non-empty list"),
    ({"epochs": []}, None, r"hyper_params\['epochs'\]=\[\]"),
    ({"activation": "Tanh"}, None, r"hyper_params\['activation'\]='Tanh'"),
    ({"seed": [1, 2]}, None, r"seed is set on the model.*set it in one place"),
    ({"hidden": [[4]]}, {"strategy": "Cartesian", "max_model": 2}, r"no key 'max_model' \(did you mean max_models"),
    ({"hidden": [[4]]}, {"strategy": "Random"}, r"search_criteria\['strategy'\]='Random'.*RandomDiscrete"),
    ({"hidden": [[4]]}, {"strategy": "RandomDiscrete", "max_models": -1}, r"search_criteria\['max_models'\]=-1"),
    ({"hidden": [[4]]}, {"strategy": "RandomDiscrete", "max_models": "2"}, r"search_criteria\['max_models'\]='2'"),
    ({"hidden": [[4]]}, {"strategy": "RandomDiscrete", "max_runtime_secs": -1}, r"\['max_runtime_secs'\]=-1"),
    ({"hidden": [[4]]}, {"strategy": "RandomDiscrete", "seed": "x"}, r"search_criteria\['seed'\]='x'"),
    ({"hidden": [[4]]}, {"strategy": "RandomDiscrete", "stopping_metric": "acc"}, r"\['stopping_metric'\]='acc'"),
    ({"hidden": [[4]]}, ["Cartesian"],
     r"search_criteria=\['Cartesian'\] is not allowed: give a dict.*\{'strategy': 'Cartesian'\}"),
], ids=["hyper_list", "hyper_empty", "hyper_unknown", "hyper_bad_value", "hyper_scalar", "hyper_empty_list",
        "hyper_string", "hyper_also_on_model", "criteria_typo", "criteria_strategy", "criteria_max_models_neg",
        "criteria_max_models_str", "criteria_runtime_neg", "criteria_seed_str", "criteria_stopping_metric",
        "criteria_list"])
def test_grid_search_refuses_bad_hyper_params_and_criteria(hyper, criteria, regex):
    with pytest.raises(ParameterError, match=regex):
        dw.H2OGridSearch(dw.DeepWaterEstimator(**GRID_BASE), hyper, search_criteria=criteria).train(
            y="label", training_frame=make_blobs(60))


@pytest.mark.parametrize("args, regex", [
    (("DeepWater", {"epochs": [1]}), r"model='DeepWater': give a DeepWaterEstimator"),
    ((None, {"epochs": [1]}), r"model=None"),
    (("est", {"epochs": [1]}, {"parallelism": -1}), r"parallelism=-1"),
    (("est", {"epochs": [1]}, {"parallelism": 1.5}), r"parallelism=1.5"),
    (("est", {"epochs": [1]}, {"grid_id": 5}), r"grid_id=5 .*non-empty string"),
], ids=["model_str", "model_None", "parallelism_neg", "parallelism_float", "grid_id_int"])
def test_grid_search_constructor_refuses_bad_arguments(args, regex):
    model = dw.DeepWaterEstimator(**GRID_BASE) if args[0] == "est" else args[0]
    with pytest.raises(ParameterError, match=regex):
        dw.H2OGridSearch(model, args[1], **(args[2] if len(args) > 2 else {}))


@pytest.fixture(scope="module")
def grid():
    return dw.H2OGridSearch(dw.DeepWaterEstimator(**GRID_BASE), {"hidden": [[4], [3]]}).train(
        y="label", training_frame=make_blobs(60))


@pytest.mark.parametrize("call, regex", [
    (lambda g: g.get_grid(sort_by="acuracy"), r"sort_by='acuracy'.*did you mean accuracy"),
    (lambda g: g.get_grid(sort_by=5), r"sort_by=5 is not allowed: name a metric"),
    (lambda g: g.get_grid(decreasing="yes"), r"decreasing='yes' is not allowed: use True or False"),
    (lambda g: g.get_hyperparams("nope"), r"'nope' is not a model of grid"),
    (lambda g: g.get_hyperparams_dict("nope"), r"'nope' is not a model of grid"),
    (lambda g: dw.H2OGridSearch(dw.DeepWaterEstimator(**GRID_BASE), {"hidden": [[4]]}).train(
        y="label", training_frame=make_blobs(60), epochz=1), r"unknown parameter 'epochz'. Did you mean epochs"),
], ids=["sort_by_typo", "sort_by_int", "decreasing_str", "get_hyperparams_unknown", "get_hyperparams_dict_unknown",
        "train_param_typo"])
def test_a_trained_grid_refuses_unknown_names(grid, call, regex):
    with pytest.raises(ParameterError, match=regex):
        call(grid)


def test_a_grid_whose_every_model_fails_names_the_first_failure():
    with pytest.raises(dw.errors.DeepWaterError, match=r"built no model.*y='lable'.*Did you mean 'label'"):
        dw.H2OGridSearch(dw.DeepWaterEstimator(**GRID_BASE), {"hidden": [[4]]}).train(
            y="lable", training_frame=make_blobs(60))


@pytest.fixture(scope="module")
def members():
    frame = make_blobs(60)
    cv = dict(TINY, nfolds=2, fold_assignment="Modulo", keep_cross_validation_predictions=True)
    return {"cv": dw.DeepWaterEstimator(**cv).train(y="label", training_frame=frame),
            "nocv": dw.DeepWaterEstimator(**TINY).train(y="label", training_frame=frame),
            "nokeep": dw.DeepWaterEstimator(**dict(TINY, nfolds=2, fold_assignment="Modulo")).train(
                y="label", training_frame=frame),
            "3folds": dw.DeepWaterEstimator(**dict(cv, nfolds=3)).train(y="label", training_frame=frame),
            "untrained": dw.DeepWaterEstimator(**cv), "frame": frame}


@pytest.mark.parametrize("bases, algo, train, error, regex", [
    (None, "AUTO", None, ParameterError, r"base_models=None is not allowed: pass a list"),
    ([], "AUTO", None, ParameterError, r"base_models=\[\] is not allowed"),
    ("cv", "AUTO", None, ParameterError, r"base_models='cv' is not allowed"),
    ([5], "AUTO", None, ParameterError, r"base_models holds 5, which is neither"),
    (["cv"], "glmm", None, ParameterError, r"metalearner_algorithm='glmm'.*'glm', 'gbm'"),
    (["cv"], None, None, ParameterError, r"metalearner_algorithm=None"),
    (["cv"], 5, None, ParameterError, r"metalearner_algorithm=5"),
    (["no_such"], "AUTO", {}, ParameterError, r"model_id='no_such' is not a model of this process"),
    (["nocv"], "AUTO", {}, ParameterError, r"kept no cross-validation predictions.*keep_cross_validation_predictions=True"),
    (["nokeep"], "AUTO", {}, ParameterError, r"kept no cross-validation predictions"),
    (["cv", "3folds"], "AUTO", {}, ParameterError, r"used other folds.*same nfolds"),
    (["cv"], "AUTO", {"y": "colour"}, ParameterError, r"predicts 'label', not y='colour'"),
    (["cv"], "AUTO", {"training_frame": "other"}, ParameterError, r"cross-validated on another training_frame"),
    (["cv"], "AUTO", {"training_frame": "half"}, ParameterError, r"cross-validated on 60 rows, the training_frame has 30"),
    (["cv"], "AUTO", {"y": None}, ParameterError, r"y=None: name the response column"),
    (["cv"], "AUTO", {"training_frame": None}, FrameError, r"training_frame must be a pandas DataFrame"),
    (["cv", "untrained"], "AUTO", None, NotFittedError,
     r"base model '.*' \(base_models\[1\]\) is not trained yet; train it"),
], ids=["bases_None", "bases_empty", "bases_str", "bases_int", "meta_typo", "meta_None", "meta_int", "unknown_id",
        "no_cv", "no_kept_predictions", "other_folds", "other_response", "other_frame", "fewer_rows", "y_None",
        "frame_None", "untrained_member"])
def test_stacked_ensemble_refuses_bad_input(members, bases, algo, train, error, regex):
    if isinstance(bases, list):
        bases = [members.get(b, b) if isinstance(b, str) else b for b in bases]
    with pytest.raises(error, match=regex):
        ensemble = dw.H2OStackedEnsembleEstimator(base_models=bases, metalearner_algorithm=algo)
        frames = {"other": make_blobs(60, seed=9), "half": members["frame"].head(30)}
        call = {"y": "label", "training_frame": members["frame"], **(train or {})}
        if isinstance(call["training_frame"], str):
            call["training_frame"] = frames[call["training_frame"]]
        ensemble.train(**call)


@pytest.mark.parametrize("call", ["predict", "model_performance"])
def test_an_untrained_ensemble_says_train_first(members, call):
    with pytest.raises(NotFittedError, match=r"ensemble .* is not trained yet; call train"):
        getattr(dw.H2OStackedEnsembleEstimator(base_models=[members["cv"]]), call)(members["frame"])


@pytest.mark.parametrize("call, error, regex", [
    (lambda c: c(hiden=(4,)), ParameterError, r"unknown parameter 'hiden'. Did you mean hidden"),
    (lambda c: c(epochs=-1).fit(A[:, :2], ["a", "b", "a", "b", "a"]), ParameterError, r"epochs=-1"),
    (lambda c: c(random_state="x", hidden=(4,), epochs=1).fit(A, ["a", "b", "a", "b", "a"]), ParameterError,
     r"random_state='x' cannot seed a fit"),
    (lambda c: c(random_state=1, seed=2, hidden=(4,), epochs=1).fit(A, ["a", "b", "a", "b", "a"]), ParameterError,
     r"random_state=1 and seed=2 both set the seed"),
], ids=["unknown_param", "bad_value_at_fit", "random_state_str", "random_state_and_seed"])
def test_sklearn_wrapper_refuses_bad_parameters(call, error, regex):
    from deepwater.sklearn import DeepWaterClassifier

    with pytest.raises(error, match=regex):
        call(DeepWaterClassifier)


# --------------------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def cli_files(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    make_blobs(60).to_csv(folder / "t.csv", index=False)
    (folder / "empty.csv").write_text("")
    (folder / "wrong.csv").write_text("q,r\n1,2\n")
    (folder / "afile").write_text("x")
    saved = dw.save_model(trained[0], str(folder / "sm"))
    bundle = trained[0].export(folder / "bundle")
    return folder, saved, bundle


CLI_TINY = ["--epochs", "1", "--hidden", "[4]", "--gpu", "false", "--quiet_mode", "true", "--backend", "torch"]


@pytest.mark.parametrize("argv, regex", [
    ([], r"required: command"),
    (["trian"], r"invalid choice: 'trian'"),
    (["train", "{d}/t.csv", "--y", "label", "--epoch", "1", "--out", "{d}/o"], r"unknown parameter 'epoch'. Did you mean epochs"),
    (["train", "{d}/t.csv", "--y", "label", "--epochs", "-1", "--out", "{d}/o"], r"epochs=-1 .*>= 0"),
    (["train", "{d}/t.csv", "--y", "label", "--epochs", "--out", "{d}/o"], r"--epochs is given without a value.*--epochs 10"),
    (["train", "{d}/t.csv", "--y", "label", "--epochs", "1", "--epochs", "2", "--out", "{d}/o"], r"--epochs is given twice"),
    (["train", "{d}/t.csv", "--y", "label", "--hidden", "[4,", "--out", "{d}/o"], r"hidden='\[4,'"),
    (["train", "{d}/none.csv", "--y", "label", "--out", "{d}/o"], r"none.csv' does not exist; check the path"),
    (["train", "{d}/empty.csv", "--y", "label", "--out", "{d}/o"], r"empty.csv' is empty"),
    (["train", "{d}/t.csv", "--y", "lable", *CLI_TINY, "--out", "{d}/o"], r"y='lable'.*Did you mean 'label'"),
    (["train", "{d}/t.csv", "--out", "{d}/o"], r"required: --y"),
    (["train", "{d}/t.csv", "--y", "label"], r"required: --out"),
    (["train", "{d}/t.csv", "--y", "label", *CLI_TINY, "--out", "{d}/afile"], r"--out .*afile' already exists; pass --force"),
    (["train", "{d}/t.csv", "--y", "label", "--x", "x1", "x3", *CLI_TINY, "--out", "{d}/o"], r"\['x3'\]; check the names"),
    (["train", "{d}/t.csv", "--y", "label", "--activation", "relu", "--out", "{d}/o"], r"activation='relu'"),
    (["train", "{d}/t.csv", "--y", "label", "--backend", "pytorch", "--out", "{d}/o"], r"backend='pytorch'"),
    (["train", "{d}/t.csv", "--y", "label", "--gpu", "yes", "--out", "{d}/o"], r"gpu='yes' .*True or False"),
    (["train", "{d}/t.csv", "extra", "--y", "label", "--out", "{d}/o"], r"'extra' is not a parameter.*--name value"),
    (["predict", "{d}/nomodel", "{d}/t.csv", "--out", "{d}/p.csv"], r"nomodel': no such saved model"),
    (["predict", "{d}/afile", "{d}/t.csv", "--out", "{d}/p.csv"], r"afile' is not a deepwater saved model"),
    (["predict", "{saved}", "{d}/none.csv", "--out", "{d}/p.csv"], r"none.csv' does not exist"),
    (["predict", "{saved}", "{d}/empty.csv", "--out", "{d}/p.csv"], r"empty.csv' is empty"),
    (["predict", "{saved}", "{d}/t.csv"], r"required: --out"),
    (["predict", "{saved}", "{d}/wrong.csv", "--out", "{d}/p.csv"], r"lacks columns.*'x1'.*add them"),
    (["export", "{d}/nomodel", "{d}/b1"], r"nomodel': no such saved model"),
    (["export", "{saved}", "{d}/b2", "--format", "tflite"], r"format='tflite'.*'onnx'"),
    (["export", "{saved}", "{d}/b3", "--layers", "nope"], r"layer='nope'.*'fc1'"),
    (["export", "{saved}", "{d}/afile"], r"afile' already exists"),
    (["info", "{d}/nomodel"], r"no such saved model"),
    (["info", "{d}/afile"], r"not a deepwater saved model"),
    (["serve", "{d}/nobundle"], r"nobundle' is not a deepwater bundle.*model.export"),
    (["serve", "{bundle}", "--port", "0"], r"--port 0 is out of range.*1-65535"),
    (["serve", "{bundle}", "--port", "70000"], r"--port 70000 is out of range"),
    (["serve", "{bundle}", "--port", "abc"], r"--port: invalid int value: 'abc'"),
    (["serve", "{bundle}", "--max-batch", "0", "--port", "1"], r"max_batch=0 must be an integer >= 1"),
    (["serve", "{bundle}", "--device", "tpu", "--port", "1"], r"device 'tpu' is neither 'cpu' nor 'cuda:<i>'"),
    (["serve", "{bundle}", "--workers", "0", "--port", "1"], r"workers=0 must be an integer >= 1"),
    (["serve", "{bundle}", "--threads", "-1", "--port", "1"], r"threads=-1 must be an integer >= 0"),
], ids=lambda argv: "_".join(a for a in argv if not a.startswith("{"))[:70] or "no_args")
def test_cli_bad_input_is_one_stderr_line_and_status_2(cli_files, capsys, argv, regex):
    folder, saved, bundle = cli_files
    args = [a.format(d=folder, saved=saved, bundle=bundle) for a in argv]
    try:
        status = main(args)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("deepwater") and "Traceback" not in err
    assert re.search(regex, err), err


# --------------------------------------------------------------------------- the service

ROW = {"x1": 0.5, "x2": 50.0, "colour": "red"}


@pytest.fixture(scope="module")
def client(cli_files):
    testclient = pytest.importorskip("fastapi.testclient")
    from deepwater.serving import ServeConfig, create_app

    with testclient.TestClient(create_app(ServeConfig(cli_files[2]))) as running:
        yield running


@pytest.mark.parametrize("body, status, field, words", [
    ({"rows": []}, 422, "rows", "non-empty list"),
    ({"rows": None}, 422, "rows", "non-empty list"),
    ({"rows": {"x1": 1}}, 422, "rows", "non-empty list"),
    ({"row": [ROW]}, 422, "rows", "missing"),
    ([ROW], 422, "rows", "missing"),
    ("rows", 422, "rows", "missing"),
    ({"rows": ["a"]}, 422, "rows[0]", "must be an object"),
    ({"rows": [1, 2]}, 422, "rows[0]", "must be an object"),
    ({"rows": [dict(ROW, x1=True)]}, 422, "rows[0].x1", "True is not a number"),
    ({"rows": [dict(ROW, x1="1.5")]}, 422, "rows[0].x1", "'1.5' is not a number"),
    ({"rows": [dict(ROW, x1="twelve")]}, 422, "rows[0].x1", "'twelve'"),
    ({"rows": [dict(ROW, x1=[1])]}, 422, "rows[0].x1", "x1"),
    ({"rows": [dict(ROW, colour=["red"])]}, 422, "rows[0].colour", "list values are not allowed"),
    ({"rows": [dict(ROW, colour={"a": 1})]}, 422, "rows[0].colour", "colour"),
    ({"rows": [{"x1": 0.5, "X2": 50.0, "colour": "red"}]}, 422, "rows[0].x2", "missing"),
    ({"rows": [ROW, {"x1": 1, "colour": "red"}]}, 422, "rows[1].x2", "missing"),
    ({"rows": [{"image": "aGVsbG8="}]}, 422, "rows[0].x1", "missing"),
    ({"rows": [ROW] * 10_001}, 413, "rows", "10,000"),
], ids=["rows_empty", "rows_null", "rows_object", "no_rows_key", "body_list", "body_string", "row_string", "row_int",
        "bool_number", "numeric_string", "text_number", "list_number", "list_level", "dict_level", "typo_column",
        "second_row_missing", "image_on_dataset_model", "over_max_rows"])
def test_service_refuses_bad_rows_naming_the_field(client, body, status, field, words):
    response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field and field in answer["error"] and words in answer["error"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("content, field", [(b"{not json", "body"), (b"", "body"),
                                            (b'{"rows": [{"x1": 1, "x2": 1' + b"0" * 400 + b', "colour": "red"}]}', "rows[0].x2"),
                                            (b'{"rows": [{"x1": 1e400, "x2": 1, "colour": "red"}]}', "rows[0].x1"),
                                            (b'{"rows": [{"x1": 1, "x2": -Infinity, "colour": "red"}]}', "rows[0].x2")],
                         ids=["broken_json", "empty_body", "integer_beyond_float", "float_beyond_float", "infinity"])
def test_service_refuses_unparsable_bodies(client, content, field):
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == field, response.text


def test_service_refuses_images_for_a_dataset_model(client):
    response = client.post("/predict/images", files=[("images", ("a.png", b"x", "image/png"))])
    assert response.status_code == 422 and response.json()["field"] == "images", response.text


@pytest.mark.parametrize("settings", [{"max_batch": 0}, {"max_rows": -1}, {"max_body_mb": 0}, {"allow_dir": "/no/dir"}],
                         ids=lambda s: next(iter(s)))
def test_service_settings_are_checked(cli_files, settings):
    from deepwater.serving import ServeConfig

    with pytest.raises(ParameterError, match=next(iter(settings))):
        ServeConfig(cli_files[2], **settings)


# --------------------------------------------------------------------------- found by this probe, now answered

@pytest.mark.parametrize("call, error, regex", [
    pytest.param(lambda: dw.DeepWaterEstimator(**TINY).train(y=["label"], training_frame=make_blobs(30)),
                 ParameterError, r"y=\['label'\] is not a column.*one column: a name, not a list", id="y-as-a-list"),
    pytest.param(lambda: dw.DeepWaterEstimator(**TINY, weights_column="w").train(
        y="label", training_frame=make_blobs(30).assign(w=0.0)), FrameError,
        r"weights_column='w' holds only zeros", id="weights-all-zero"),
    pytest.param(lambda: dw.DeepWaterEstimator(**TINY, weights_column="w").train(
        y="label", training_frame=make_blobs(30).assign(w="heavy")), FrameError,
        r"weights_column='w' holds text that is no number: 'heavy' at row 0", id="weights-as-text"),
    pytest.param(lambda: dw.load_model(None), ParameterError, r"path=None is not a path", id="load_model-None"),
    pytest.param(lambda: dw.load_model(5), ParameterError, r"path=5 is not a path", id="load_model-5"),
    pytest.param(lambda: dw.import_file(None), ParameterError, r"path=None is not a path", id="import_file-None"),
])
def test_inputs_this_probe_found_unanswered_now_get_clear_errors(call, error, regex):
    with pytest.raises(error, match=regex):
        call()


def test_export_or_save_to_a_non_path_or_into_a_file_is_refused(trained, tmp_path):
    model, _ = trained
    with pytest.raises(ParameterError, match=r"path=None is not a path"):
        model.export(None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match=r"lies inside a file, not a folder"):
        dw.save_model(model, tmp_path / "file" / "x")


@pytest.mark.parametrize("name, value", [("hidden", [np.int64(4)]), ("mini_batch_size", np.int32(8)),
                                         ("gpu", np.bool_(False)), ("epochs", np.float64(1.0))])
def test_numpy_scalars_are_taken_as_the_numbers_they_hold(name, value):
    assert dw.DeepWaterEstimator(**{name: value}).params[name]["actual"] == value


@pytest.fixture(scope="module")
def regressor():
    frame = make_linear(60)
    return dw.DeepWaterEstimator(**TINY).train(y="y", training_frame=frame), frame


@pytest.mark.parametrize("metric", ["logloss", "confusion_matrix", "auc", "accuracy"])
def test_a_classification_metric_of_a_regression_is_a_parameter_error(regressor, metric):
    model, frame = regressor
    with pytest.raises(ParameterError, match=rf"{metric}\(\) needs a (classification|binomial) model .*metrics of a "
                                             r"regression model; ask for one they hold: mse\(\), rmse\(\), mae\(\)"):
        getattr(model.model_performance(frame), metric)()


def test_sklearn_regressor_refuses_a_text_target_naming_the_value():
    from deepwater.sklearn import DeepWaterRegressor

    with pytest.raises(ParameterError, match=r"y holds 'b' at row 1, which is not a number.*DeepWaterRegressor "
                                             r"predicts numbers. Fit DeepWaterClassifier .*pd.to_numeric"):
        DeepWaterRegressor(hidden=(4,), epochs=1).fit(A, ["1.5", "b", "2", "3", "4"])


def test_enum_values_take_any_case_and_flags_take_numpy_bools(trained):
    assert dw.DeepWaterEstimator(fold_assignment="random").params["fold_assignment"]["actual"] == "Random"
    model, _ = trained
    assert model.model_performance(train=np.bool_(True)).logloss() == model.model_performance(train=True).logloss()


def test_distance_reads_frame_columns_by_name_and_warns_of_rows_without_direction():
    x = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    y = pd.DataFrame({"b": [1.0], "a": [2.0]})
    np.testing.assert_allclose(dw.distance(x, y).to_numpy(), [[5 ** 0.5], [3.0]])
    with pytest.warns(UserWarning, match=r"1 row\(s\) of X and 0 of Y are all zeros.*cosine similarities are NaN"):
        cosines = dw.distance(np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[1.0, 1.0]]), "cosine")
    assert np.isnan(cosines.iloc[0, 0]) and cosines.iloc[1, 0] == pytest.approx(3 / 10 ** 0.5)


def test_service_refuses_an_infinite_number_and_reads_nan_as_missing(client):
    def post(x1: bytes):
        return client.post("/predict", content=b'{"rows": [{"x1": ' + x1 + b', "x2": 1, "colour": "red"}]}',
                           headers={"content-type": "application/json"})

    refused = post(b"1e400")
    assert refused.status_code == 422 and "too large for a float" in refused.json()["error"] \
        and "null for a missing value" in refused.json()["error"], refused.text
    missing = post(b"NaN")
    assert missing.status_code == 200 and missing.json() == post(b"null").json(), missing.text
