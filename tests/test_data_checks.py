"""No silent wrong answers on data: inf and numbers beyond float32, duplicate column names, lists and dicts in
cells, text in numeric columns, and model_performance arguments that conflict, each a clear error naming the
column, value and row; rows predict() cannot score come back NaN, label included, on every backend."""
from __future__ import annotations

import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs, make_linear
from deepwater.data.encoders import BLOCK_BYTES, DatasetEncoder, Response
from deepwater.data.sources import ArraySource, map_batches
from deepwater.errors import FrameError, ParameterError

BACKENDS = installed_backends()
BAD_NUMBERS = [np.inf, -np.inf, 1e39]  # 1e39 is finite in float64 but beyond float32's 3.4e38


def mlp(**params) -> dw.DeepWaterEstimator:
    return dw.DeepWaterEstimator(**{"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 7,
                                    **params})


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with index labels that are not row positions, so messages must name the label."""
    return frame.set_axis(np.arange(100, 100 + len(frame)))


@pytest.fixture(scope="module")
def blobs() -> pd.DataFrame:
    return labelled(make_blobs(90, seed=3))


@pytest.fixture(scope="module")
def classifier(blobs) -> dw.DeepWaterEstimator:
    return mlp().train(y="label", training_frame=blobs)


def with_value(frame: pd.DataFrame, column: str, label: int, value) -> pd.DataFrame:
    changed = frame.copy()
    if not isinstance(value, (int, float)):
        changed[column] = changed[column].astype(object)
    changed.at[label, column] = value
    return changed


# --------------------------------------------------------------------------- inf and float32 overflow

@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_number_in_a_feature_fails_train_naming_column_and_row(blobs, value):
    with pytest.raises(FrameError, match=r"column 'x2' holds .* at row 104 .*float32"):
        mlp().train(y="label", training_frame=with_value(blobs, "x2", 104, value))


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_number_in_a_numeric_response_fails_train(value):
    frame = labelled(make_linear(60, seed=2))
    with pytest.raises(FrameError, match=r"y='y' holds .* at row 131"):
        mlp().train(y="y", training_frame=with_value(frame, "y", 131, value))


def test_a_bad_number_in_the_validation_frame_fails_train(blobs):
    with pytest.raises(FrameError, match=r"column 'x1' holds inf at row 120"):
        mlp().train(y="label", training_frame=blobs, validation_frame=with_value(blobs, "x1", 120, np.inf))


def test_a_bad_number_in_a_scored_frame_fails_model_performance(classifier, blobs):
    with pytest.raises(FrameError, match=r"column 'x1' holds -inf at row 150"):
        classifier.model_performance(with_value(blobs, "x1", 150, -np.inf))


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_gives_nan_label_and_probabilities_for_rows_it_cannot_score(blobs, backend):
    model = mlp(backend=backend).train(y="label", training_frame=blobs)
    frame = with_value(with_value(blobs, "x1", 101, np.inf), "x2", 102, 1e39)
    predictions = model.predict(frame)
    bad = predictions.loc[[101, 102]]
    assert bad["predict"].isna().all()
    assert bad[["a", "b", "c"]].isna().all().all()
    good = predictions.drop(index=[101, 102])
    pd.testing.assert_frame_equal(good, model.predict(blobs).drop(index=[101, 102]))
    assert good.notna().all().all()


def test_rows_holding_inf_get_nan_outputs_whatever_the_network_makes_of_them():
    x = np.ones((5, 3), dtype=np.float32)
    x[1, 2], x[3, 0] = np.inf, -np.inf
    seen = []

    def network(batch: np.ndarray) -> np.ndarray:  # a network that never outputs NaN
        seen.append(batch.copy())
        return np.full((len(batch), 2), 0.5, dtype=np.float32)

    out, rows = map_batches(ArraySource(x), network, batch_size=4)
    np.testing.assert_array_equal(rows, np.arange(5))
    assert np.isnan(out[[1, 3]]).all() and not np.isnan(out[[0, 2, 4]]).any()
    assert all(np.isfinite(batch).all() for batch in seen)  # the network never sees inf


def test_predict_gives_nan_for_such_rows_in_regression():
    frame = labelled(make_linear(60, seed=2))
    model = mlp().train(y="y", training_frame=frame)
    predictions = model.predict(with_value(frame, "a", 110, -np.inf))
    assert np.isnan(predictions.loc[110, "predict"])
    assert predictions.drop(index=110)["predict"].notna().all()


def test_missing_values_are_still_imputed_not_refused(classifier, blobs):
    predictions = classifier.predict(with_value(blobs, "x1", 101, np.nan))
    assert predictions.notna().all().all()


# --------------------------------------------------------------------------- columns and cells

def test_duplicate_column_names_fail_train_and_predict(classifier, blobs):
    doubled = pd.concat([blobs, blobs[["x1"]]], axis=1)
    with pytest.raises(FrameError, match=r"training_frame has duplicate column names \['x1'\]"):
        mlp().train(y="label", training_frame=doubled)
    with pytest.raises(FrameError, match=r"frame has duplicate column names \['x1'\]"):
        classifier.predict(doubled)


@pytest.mark.parametrize("value", [[1.0, 2.0], {"r": 1}])
def test_lists_and_dicts_in_a_predictor_fail_train(blobs, value):
    frame = blobs.assign(extra=[value] * len(blobs))
    with pytest.raises(FrameError, match=rf"column 'extra' holds {type(value).__name__} values \(first at row 100"):
        mlp().train(y="label", training_frame=frame)


@pytest.mark.parametrize("column", ["x1", "colour", "label"])
def test_a_list_in_a_column_the_model_reads_fails_predict_and_scoring(classifier, blobs, column):
    frame = with_value(blobs, column, 140, [1, 2])
    with pytest.raises(FrameError, match=rf"column '{column}' holds list values \(first at row 140"):
        classifier.model_performance(frame)
    if column != "label":
        with pytest.raises(FrameError, match=rf"column '{column}' holds list values"):
            classifier.predict(frame)


def test_a_list_in_a_column_the_model_does_not_read_is_ignored(classifier, blobs):
    predictions = classifier.predict(blobs.assign(notes=[["unused"]] * len(blobs)))
    pd.testing.assert_frame_equal(predictions, classifier.predict(blobs))


def test_text_in_a_numeric_column_fails_predict_naming_value_and_row(classifier, blobs):
    frame = with_value(with_value(blobs, "x2", 107, "n/a"), "x2", 160, "twelve")
    with pytest.raises(FrameError, match=r"column 'x2' is numeric .* text .*'n/a' at row 107 \(2 such value"):
        classifier.predict(frame)


def test_numbers_written_as_text_still_predict(classifier, blobs):
    as_text = blobs.assign(x1=blobs["x1"].map(repr).astype(object))
    np.testing.assert_allclose(classifier.predict(as_text)[["a", "b", "c"]].to_numpy(),
                               classifier.predict(blobs)[["a", "b", "c"]].to_numpy(), atol=1e-6)


def test_decode_gives_no_label_where_a_probability_is_nan():
    response = Response("y", "classification", ["no", "yes"])
    probabilities = np.array([[0.7, 0.3], [np.nan, np.nan], [0.2, 0.8]])
    assert response.decode(probabilities, threshold=0.25).tolist() == ["yes", None, "yes"]
    assert response.decode(probabilities).tolist() == ["no", None, "yes"]


# --------------------------------------------------------------------------- model_performance arguments

@pytest.mark.parametrize("arguments, named", [
    ({"train": True}, "frame, train=True"),
    ({"valid": True}, "frame, valid=True"),
    ({"train": True, "valid": True, "frame": None}, "train=True, valid=True"),
])
def test_model_performance_arguments_that_conflict(classifier, blobs, arguments, named):
    with pytest.raises(ParameterError, match=rf"model_performance\({named}\): these arguments conflict"):
        classifier.model_performance(**{"frame": blobs, **arguments})


# --------------------------------------------------------------------------- columns used twice or not at all

QUIET = {"hidden": [4], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 1}


@pytest.mark.parametrize("parameter", ["weights_column", "fold_column"])
def test_a_weights_or_fold_column_listed_in_x_is_refused_as_y_is(parameter):
    frame = make_blobs(60).assign(w=1.0, f=np.arange(60) % 3)
    column = {"weights_column": "w", "fold_column": "f"}[parameter]
    with pytest.raises(ParameterError, match=rf"{parameter}='{column}' is also in x.*Drop '{column}' from x"):
        dw.DeepWaterEstimator(**QUIET, **{parameter: column}).train(x=["x1", "x2", column], y="label",
                                                                     training_frame=frame)


def test_an_image_model_given_more_columns_in_x_refuses_and_by_default_says_what_it_leaves(image_frame):
    frame = image_frame.assign(brightness=np.arange(len(image_frame), dtype=float))
    image = {**QUIET, "network": "lenet", "image_shape": [16, 16], "channels": 1}
    with pytest.raises(ParameterError, match=r"an image model reads one column of image URIs, 'uri', and cannot use "
                                             r"\['brightness'\] too"):
        dw.DeepWaterEstimator(**image).train(x=["uri", "brightness"], y="label", training_frame=frame)
    with pytest.warns(UserWarning, match=r"x=None: an image model reads one column of image URIs, 'uri'; the frame's "
                                         r"other columns \['brightness'\] are not used"):
        dw.DeepWaterEstimator(**image).train(y="label", training_frame=frame)


def test_image_settings_given_for_a_dataset_network_warn():
    with pytest.warns(UserWarning, match=r"channels, image_shape given, but network='mlp' reads this frame's columns "
                                         r"as a dataset.*they are not used"):
        dw.DeepWaterEstimator(**QUIET, image_shape=[8, 8], channels=1).train(y="label", training_frame=make_blobs(60))


# --------------------------------------------------------------------------- columns that do not say what they are

def blobs_with(column: str, values: list) -> pd.DataFrame:
    frame = make_blobs(60)
    frame[column] = pd.Series(values * (60 // len(values)), dtype=object)
    return frame


@pytest.mark.parametrize("values, words", [
    ([1.5, 2.5, "oops"], r"column 'z' mixes numbers and text: 'oops' at row 2 \(20 text value\(s\)\) among numbers "
                         r"such as 1.5.*pd.to_numeric\(frame\['z'\], errors='coerce'\)"),
    ([1.0, "N/A", None, 3.0], r"column 'z' mixes numbers and text: 'N/A' at row 1"),
    ([Decimal("1.5"), Decimal("2.25")], r"column 'z' holds numbers stored as Python objects \(Decimal "
                                        r"Decimal\('1.5'\) at row 0\).*pd.to_numeric\(frame\['z'\]\)"),
])
def test_numbers_and_text_in_one_predictor_column_are_refused_naming_the_first_text(values, words):
    with pytest.raises(FrameError, match=words):
        dw.DeepWaterEstimator(**QUIET).train(y="label", training_frame=blobs_with("z", values))


def test_a_text_predictor_column_stays_categorical():
    model = dw.DeepWaterEstimator(**QUIET).train(y="label", training_frame=blobs_with("z", ["red", "blue", None]))
    assert any(name.startswith("z.") for name in model._fitted.inputs.feature_names())


def test_a_response_of_mixed_numbers_and_text_is_refused():
    frame = make_blobs(60).assign(label=pd.Series([1, "1", 2] * 20, dtype=object))
    with pytest.raises(FrameError, match=r"y='label' mixes numbers and text: '1' at row 1"):
        dw.DeepWaterEstimator(**QUIET).train(y="label", training_frame=frame)


def test_classes_that_print_alike_are_refused():
    frame = make_blobs(60).assign(label=pd.Categorical([1, "1", 2] * 20))
    with pytest.raises(FrameError, match=r"y='label' has classes that print alike: \['1'\]"):
        dw.DeepWaterEstimator(**QUIET).train(y="label", training_frame=frame)


def test_a_text_response_of_many_numbers_warns_that_it_trains_classes():
    frame = make_blobs(80).assign(label=[str(i % 40 + 1) for i in range(80)])
    with pytest.warns(UserWarning, match=r"y='label' holds text that reads as numbers .* 40-class classification.*"
                                         r"pd.to_numeric\(frame\['label'\]\)"):
        dw.DeepWaterEstimator(**QUIET).train(y="label", training_frame=frame)


def test_a_constant_numeric_response_is_refused():
    with pytest.raises(FrameError, match=r"y='y' is constant \(every row is 3\), so there is nothing to learn"):
        dw.DeepWaterEstimator(**QUIET).train(y="y", training_frame=make_blobs(60).assign(y=3.0))


def test_unseen_categorical_values_of_another_type_warn_naming_the_column_and_share():
    """Integer codes at predict for a column trained on text are a type change, not new levels."""
    frame = make_blobs(60).assign(size=["1", "2", "3"] * 20)
    model = dw.DeepWaterEstimator(**QUIET).train(y="label", training_frame=frame)
    changed = frame.assign(size=[1, 2, 3] * 20)
    with pytest.warns(UserWarning, match=r"column 'size': 100% of its values \(1 of type int64, ...\) are levels the model "
                                         r"never saw, and of another type than the levels it learnt \(str"):
        model.predict(changed)
    new_levels = frame.assign(size=["1", "4", "5"] * 20)  # new text levels: unseen, but no type change
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.predict(new_levels)


def test_a_checkpoint_restart_whose_column_changed_type_warns():
    frame = make_blobs(60).assign(size=["1", "2", "3"] * 20)
    first = dw.DeepWaterEstimator(**QUIET).train(y="label", training_frame=frame)
    with pytest.warns(UserWarning, match=r"column 'size': 100% of its values \(1 of type int64"):
        dw.DeepWaterEstimator(checkpoint=first, epochs=2).train(y="label", training_frame=frame.assign(
            size=[1, 2, 3] * 20))


@pytest.mark.parametrize("column", ["x1", "label"])
def test_a_complex_column_is_refused_naming_it(column):
    frame = make_blobs(60).assign(z=np.arange(60) * (1 + 1j))
    y, x = ("z", ["x1", "x2"]) if column == "label" else ("label", ["x1", "z"])
    with pytest.raises(FrameError, match=r"column 'z' holds complex numbers; .*\.real and \.imag"):
        dw.DeepWaterEstimator(**QUIET).train(x=x, y=y, training_frame=frame)


def test_the_encoder_checks_every_frame_though_it_reuses_a_column_layout():
    """transform() works out where its columns sit once per layout of columns and dtypes: a frame of another
    order, with an extra column, or of the same columns with other dtypes, is encoded or checked as itself."""
    frame = make_blobs(60)
    frame.loc[0, "x1"] = np.nan  # missing: the training mean, so 0 once standardised
    encoder = DatasetEncoder.fit(frame, ["x1", "x2", "colour"], True, True)
    numbers = frame[["x1", "x2"]].to_numpy(np.float64)
    means, scales = (np.array([getattr(c, k) for c in encoder.numeric]) for k in ("mean", "scale"))
    expected = np.where(np.isnan(numbers), 0.0, (numbers - means) / scales)
    for scored in (frame, frame[["label", "colour", "x2", "x1"]], frame.astype({"x2": np.float32}), frame):
        np.testing.assert_allclose(encoder.transform(scored)[:, :2], expected, rtol=1e-5, atol=1e-6)
    as_text = frame.astype({"x1": object})
    as_text.loc[3, "x1"] = "twelve"
    with pytest.raises(FrameError, match=r"column 'x1' is numeric in the model but holds text .*'twelve' at row 3"):
        encoder.transform(as_text)
    with pytest.raises(FrameError, match=r"lacks columns the model was trained on: \['x2'\]"):
        encoder.transform(frame.drop(columns="x2"))
    with pytest.raises(FrameError, match=r"column 'x2' holds inf at row 5"):
        encoder.transform(frame.assign(x2=np.where(frame.index == 5, np.inf, frame["x2"])))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, "mixed", np.uint8])
def test_a_frame_of_several_blocks_encodes_as_one_and_names_a_late_inf_by_its_row(dtype):
    """transform() converts, checks and standardises the numeric columns a block of rows at a time (while they are
    in the cache): a frame of several blocks, of one dtype or several, its columns picked out of others, encodes as
    the whole computed at once, its missing values imputed, and an inf in its last block is named by its row."""
    rng = np.random.default_rng(5)
    rows = 2 * BLOCK_BYTES // (4 * 19) + 7  # past two blocks of the 19 columns the model reads
    frame = pd.DataFrame(rng.integers(0, 200, (rows, 20)), columns=[f"x{i}" for i in range(20)])
    frame = frame.astype(np.uint8 if dtype in ("mixed", np.uint8) else dtype).set_axis(np.arange(rows) + 1000)
    if dtype == "mixed":
        frame = frame.astype({"x7": np.float64, "x12": np.int64})
    columns = [c for c in frame.columns if c != "x3"]
    encoder = DatasetEncoder.fit(frame, columns, True, True)
    if dtype != np.uint8:
        frame.iloc[rows - 2, 7] = np.nan  # missing: the training mean, so 0 once standardised
    values = frame[columns].to_numpy(np.float64)
    means, scales = (np.array([getattr(c, k) for c in encoder.numeric]) for k in ("mean", "scale"))
    expected = np.where(np.isnan(values), 0.0, (values - means) / scales)
    np.testing.assert_allclose(encoder.transform(frame), expected, rtol=1e-5, atol=1e-5)
    if dtype != np.uint8:
        frame.iloc[rows - 3, 7] = np.inf
        with pytest.raises(FrameError, match=rf"column 'x7' holds inf at row {rows - 3 + 1000}"):
            encoder.transform(frame)
        assert np.isinf(encoder.transform(frame, keep_infinite=True)[rows - 3]).any()
