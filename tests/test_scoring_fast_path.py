"""The one-row scoring paths (issue 28): a plain dict row encoded without a frame (DatasetEncoder.encode_row,
Scorer.predict_row), the frame layout kept between calls, and predict()'s frame made from its blocks. Each fast
path gives exactly the slow path's answer, and every row it does not take gets the frame's errors and warnings."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import make_blobs, make_linear
from deepwater import inference
from deepwater.data.encoders import READS_BLOCKS, ColumnLayout, DatasetEncoder, Response
from deepwater.data.frames import check_plain_values
from deepwater.errors import DeepWaterError, FrameError, ParameterError

pytest.importorskip("onnxruntime")


def fitted_encoder(**params) -> DatasetEncoder:
    """An encoder of two numeric columns (on different scales) and a categorical one."""
    frame = make_blobs(60, seed=1)
    return DatasetEncoder.fit(frame, ["x1", "x2", "colour"], standardize=True, ignore_const_cols=True, **params)


def plain_rows(frame: pd.DataFrame) -> list[dict]:
    """The frame's rows as a JSON client sends them: ints, floats and str."""
    return json.loads(frame.to_json(orient="records"))


def outcome(function, *args) -> tuple[str, object, list[str]]:
    """What a call gives: ('value', its result, warnings) or ('error', the class and message, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = ("value", function(*args))
        except DeepWaterError as error:
            result = ("error", (type(error), str(error)))
    return (*result, [str(w.message) for w in caught])


# --------------------------------------------------------------------------- the encoder's plain rows

@pytest.mark.parametrize("encoding", ["AUTO", "Binary", "LabelEncoder"])
def test_a_plain_row_encodes_exactly_as_its_one_row_frame(encoding):
    encoder = fitted_encoder(categorical_encoding=encoding)
    rows = plain_rows(make_blobs(12, seed=2).drop(columns="label"))
    rows[0]["x1"], rows[1]["x2"] = float("nan"), 48  # a missing value (the training mean) and an int
    for row in rows:
        fast = encoder.encode_row(row)
        assert fast is not None
        np.testing.assert_array_equal(fast, encoder.transform(pd.DataFrame([row]), keep_infinite=True))


def test_hashed_levels_encode_the_same_without_a_frame():
    encoder = fitted_encoder(max_categorical_features=2)
    row = {"x1": 0.5, "x2": 51.25, "colour": "green"}
    np.testing.assert_array_equal(encoder.encode_row(row), encoder.transform(pd.DataFrame([row])))


@pytest.mark.parametrize("change", [
    {"x1": None}, {"x1": float("inf")}, {"x1": "1.5"}, {"x1": "tall"}, {"x1": True}, {"x1": np.float32(0.5)},
    {"x1": 2**60}, {"x1": 10**400}, {"x1": [1.0, 2.0]}, {"colour": "purple"}, {"colour": 3}, {"colour": None},
    {"colour": ["red"]}])
def test_a_row_the_fast_path_leaves_gets_the_frames_answer_errors_and_warnings(change):
    encoder = fitted_encoder()
    row = {"x1": 0.5, "x2": 51.25, "colour": "green", **change}
    assert encoder.encode_row(row) is None
    assert encoder.encode_row({"x1": 0.5, "colour": "green"}) is None  # a column absent


def test_the_layout_kept_between_frames_is_worked_out_again_when_a_dtype_changes():
    encoder = fitted_encoder()
    frame = make_blobs(5, seed=3).drop(columns="label")
    first = encoder.transform(frame)
    same_columns = frame.assign(x2=frame["x2"].astype(object))
    same_columns.loc[2, "x2"] = "tall"  # the same names, one of them now text
    with pytest.raises(FrameError, match="'x2' is numeric in the model but holds text"):
        encoder.transform(same_columns)
    ints = frame.assign(x1=np.arange(5))  # float -> int: no missing value to look for, other numbers
    np.testing.assert_array_equal(encoder.transform(ints)[:, 1:], first[:, 1:])
    assert (encoder.transform(ints)[:, 0] != first[:, 0]).any()
    np.testing.assert_array_equal(encoder.transform(frame), first)


def test_a_frame_changed_in_place_is_read_again():
    encoder = fitted_encoder()
    frame = make_blobs(5, seed=3).drop(columns="label")
    encoder.transform(frame)  # its layout kept: the numeric columns read from their block
    frame.loc[1, "x1"] = 100.0
    frame["x2"] = np.linspace(40.0, 60.0, 5)  # a new array for a column: pandas may move it to a block of its own
    frame["colour"] = frame["colour"].cat.rename_categories({"red": "blue", "blue": "red"})
    expected = fitted_encoder().transform(frame.copy())  # a fresh encoder: nothing kept
    np.testing.assert_array_equal(encoder.transform(frame), expected)


# --------------------------------------------------------------------------- predict()'s frame

@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_the_predictions_frame_is_the_one_the_constructor_makes(kind):
    response = Response("y", "classification", ["a", "b", "c"]) if kind == "classification" else \
        Response("y", "regression", mean=10.0, scale=2.0)
    width = 3 if kind == "classification" else 1
    output = np.random.default_rng(0).random((4, width), dtype=np.float32)
    output[1, 0] = np.nan
    rows = np.array([0, 1, 3])  # row 2 was skipped (a bad image)
    index = pd.Index(["p", "q", "r", "s"])
    got = response.predictions(output[:3], rows, index)
    full = np.full((4, width), np.nan)
    full[rows] = output[:3]
    if kind == "classification":
        labels = pd.Categorical([response.classes[i] for i in full.argmax(axis=1)], categories=response.classes)
        labels[np.isnan(full).any(axis=1)] = np.nan
        expected = pd.DataFrame({"predict": labels, **{c: full[:, i] for i, c in enumerate(response.classes)}},
                                index=index)
    else:
        expected = pd.DataFrame({"predict": full[:, 0] * 2.0 + 10.0}, index=index)
    pd.testing.assert_frame_equal(got, expected)
    got["extra"] = 1.0  # a frame pandas can change like any other
    got.iloc[0, 1] = 0.5
    assert got.iloc[0, 1] == 0.5 and list(got.columns)[-1] == "extra"


# --------------------------------------------------------------------------- the bundle's predict_row

@pytest.fixture(scope="module", params=["classification", "regression"])
def bundle(request, tmp_path_factory) -> tuple[inference.Scorer, pd.DataFrame]:
    """A torch model's bundle (a categorical and a constant column among its predictors) and rows to score."""
    frame = make_blobs(90, seed=4) if request.param == "classification" else make_linear(90, seed=4)
    frame["constant"] = 1.5
    y = "label" if request.param == "classification" else "y"
    model = dw.DeepWaterEstimator(hidden=[6], epochs=1, gpu=False, quiet_mode=True, seed=2, backend="torch",
                                  mini_batch_size=16).train(y=y, training_frame=frame)
    scorer = inference.load(model.export(tmp_path_factory.mktemp("bundle") / "b"), device="cpu")
    return scorer, frame.drop(columns=y).head(6)


def test_predict_row_gives_predicts_answer_for_plain_rows(bundle):
    scorer, frame = bundle
    for row in plain_rows(frame):
        assert scorer.inputs.encoder.encode_row(row) is not None  # the frame-free path
        assert scorer.predict_row(row) == scorer.records(scorer.outputs(scorer.encode(pd.DataFrame([row]))))[0]
        expected = scorer.predict(pd.DataFrame([row])).iloc[0].to_dict()
        assert scorer.predict_row(row) == expected


@pytest.mark.parametrize("change", ["absent", None, float("inf"), "1.5", "tall", True, 2**60, [1.0], "unseen", 7])
def test_predict_row_gives_the_frames_answer_errors_and_warnings_for_other_rows(bundle, change):
    scorer, frame = bundle
    row = plain_rows(frame)[0]
    numeric, categorical = (scorer.inputs.encoder.columns[i] for i in (0, -1))
    if change == "absent":
        del row[numeric]
    elif change in ("unseen", 7):
        row[categorical] = change  # a level never seen; a number among text levels (a warning)
    else:
        row[numeric] = change
    assert scorer.inputs.encoder.encode_row(row) is None
    got = outcome(scorer.predict_row, row)
    expected = outcome(lambda: scorer.predict(pd.DataFrame([row])).iloc[0].to_dict())
    if expected[0] == "value":  # predict()'s NaN is a record's None
        expected = ("value", {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in expected[1].items()},
                    expected[2])
    assert got == expected


def test_predict_row_takes_a_dict(bundle):
    scorer, frame = bundle
    with pytest.raises(ParameterError, match="row must be a dict of column values, got DataFrame"):
        scorer.predict_row(frame.head(1))


# --------------------------------------------------------------------------- the bundle's predict_array

@pytest.fixture(scope="module", params=["classification", "regression"])
def numeric_bundle(request, tmp_path_factory) -> inference.Scorer:
    """A torch model's bundle whose predictors are all numeric (one of them constant, so dropped)."""
    frame = make_blobs(90, seed=5).drop(columns="colour") if request.param == "classification" else \
        make_linear(90, seed=5).drop(columns="group")
    frame["constant"] = 1.5
    y = "label" if request.param == "classification" else "y"
    model = dw.DeepWaterEstimator(hidden=[6], epochs=1, gpu=False, quiet_mode=True, seed=2, backend="torch",
                                  mini_batch_size=16).train(y=y, training_frame=frame)
    return inference.load(model.export(tmp_path_factory.mktemp("numeric") / "b"), device="cpu")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_predict_array_gives_predicts_answer_on_the_frame_of_its_columns(numeric_bundle, dtype):
    scorer = numeric_bundle
    assert scorer.columns == scorer.inputs.encoder.columns and "constant" not in scorer.columns
    x = np.random.default_rng(6).normal(2.0, 3.0, size=(7, len(scorer.columns))) * 10
    if dtype != np.int64:
        x[1, 0], x[2, -1] = np.nan, np.inf  # a missing value (the training mean); a row without a prediction
        x[3, 0] = 1e39 if dtype == np.float64 else -np.inf  # beyond float32: inf, as in a frame
    x = x.astype(dtype)
    got = scorer.predict_array(x)
    pd.testing.assert_frame_equal(got, scorer.predict(pd.DataFrame(x, columns=scorer.columns)))
    assert got.iloc[0].notna().all()
    if dtype != np.int64:
        assert got.iloc[[2, 3]].isna().all(axis=None) and got.iloc[1].notna().all()
    pd.testing.assert_frame_equal(scorer.predict_array(x[:1]), got.head(1))  # one row: the same answer
    records = scorer.predict_array(x, as_frame=False)
    assert records == scorer.records(scorer.outputs(scorer.encode(pd.DataFrame(x, columns=scorer.columns))))
    for record, (_, row) in zip(records, got.iterrows()):  # the frame's values, None where it has none
        assert record == {name: None if pd.isna(value) else value for name, value in row.items()}
    assert scorer.predict_array(x[:1], as_frame=False) == records[:1]


def test_predict_array_refuses_what_is_not_rows_of_its_numbers(numeric_bundle):
    scorer = numeric_bundle
    width = len(scorer.columns)
    for x, message in [(np.zeros(width), r"shape \(\d+,\); .* x.reshape\(1, -1\)"),
                       (np.zeros((2, width + 1)), rf"shape \(2, {width + 1}\); .* takes \(rows, {width}\)"),
                       (np.zeros((0, width)), "at least one row"),
                       (np.zeros((1, width)).tolist(), "x must be a numpy array .* got list; score a DataFrame"),
                       (np.zeros((1, width), dtype=bool), "dtype bool; predict_array.. takes numbers"),
                       (np.full((1, width), "1.5", dtype=object), "dtype object")]:
        with pytest.raises(ParameterError, match=message):
            scorer.predict_array(x)
    with pytest.raises(ParameterError, match=r"as_frame='no' must be True .* or False \(a dict per row"):
        scorer.predict_array(np.zeros((1, width)), as_frame="no")


def test_predict_array_sends_a_model_with_categorical_columns_to_predict(bundle):
    scorer, frame = bundle
    with pytest.raises(ParameterError, match="this model reads categorical columns .* pass them in a frame to "
                                             r"predict\(frame\)"):
        scorer.predict_array(np.zeros((1, len(scorer.columns))))


# --------------------------------------------------------------------------- pandas' internals, and without them

def test_the_public_layout_reads_frames_as_the_block_layout_does():
    assert READS_BLOCKS  # this pandas' blocks are read (the quick path); the public one must agree with it
    frame = make_blobs(5, seed=3).drop(columns="label")
    numeric = ["x1", "x2"]
    layouts = [ColumnLayout.of(frame, ["x1", "x2", "colour"], numeric, blocks=blocks) for blocks in (True, False)]
    assert layouts[1].block is None
    ints = frame.assign(x1=np.arange(5))
    for layout in layouts:
        got = layout.numbers(frame, lambda block, first_row: None)
        np.testing.assert_array_equal(got, frame[numeric].to_numpy(np.float32))
        assert layout.fits(frame) and layout.fits(frame.copy())
        assert not layout.fits(ints) and not layout.fits(frame[["x2", "x1", "colour"]])


@pytest.mark.parametrize("width", [3, 40])  # few columns are read one by one, many through the frame's dtypes
def test_container_cells_are_found_among_few_and_many_columns(width):
    frame = pd.DataFrame(np.zeros((3, width)), columns=[f"p{i}" for i in range(width)])
    frame["name"] = ["a", "b", "c"]  # text: single values
    frame["mixed"] = pd.Series([1.0, "two", 3], dtype=object)
    check_plain_values(frame, list(frame.columns))
    frame[f"p{width - 1}"] = pd.Series([0.0, [1.0, 2.0], 0.0], dtype=object)
    with pytest.raises(FrameError, match=rf"column 'p{width - 1}' holds list values \(first at row 1"):
        check_plain_values(frame, list(frame.columns))
    check_plain_values(frame, ["name", "mixed"])  # only the columns asked about
