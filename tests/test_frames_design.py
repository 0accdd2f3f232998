"""Frames in (files, x/y, problem type) and the encoders fitted on them (design matrix, response, weights)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import deepwater as dw
from deepwater import (
    DeepWaterEstimator,
    FrameError,
    MissingDependencyError,
    ParameterError,
)
from deepwater.data.encoders import DatasetEncoder, Response
from deepwater.data.frames import (
    check_frame,
    detect_problem_type,
    import_file,
    resolve_columns,
)
from deepwater.specs import CLASSIFICATION, REGRESSION

FAST = {"gpu": False, "quiet_mode": True, "hidden": [16], "mini_batch_size": 32, "seed": 1234}


def small_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "num": [1.5, 2.0, -3.25, 4.0],
        "count": [1, 2, 3, 4],
        "word": ["x", "y", "x", "z"],
        "label": ["a", "b", "a", "b"],
    })


# --------------------------------------------------------------------------- import_file

@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_import_file_round_trips_csv(tmp_path, suffix):
    frame = small_frame()
    path = tmp_path / f"data{suffix}"
    frame.to_csv(path, index=False)
    read = import_file(path)
    assert list(read.columns) == list(frame.columns)
    np.testing.assert_allclose(read["num"].to_numpy(), frame["num"].to_numpy())
    assert read["word"].tolist() == frame["word"].tolist()
    assert read["count"].tolist() == frame["count"].tolist()


def test_import_file_reads_gzip_compressed_bytes(tmp_path):
    import gzip

    path = tmp_path / "DATA.CSV.GZ"  # the suffix check ignores case
    with gzip.open(path, "wt") as handle:
        handle.write("a,b\n1,2\n3,4\n")
    read = import_file(str(path))
    assert read.to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_import_file_round_trips_parquet(tmp_path):
    frame = small_frame()
    path = tmp_path / "data.parquet"
    try:
        frame.to_parquet(path)
    except ImportError:
        pytest.skip("no usable parquet engine in this environment")
    read = import_file(path)
    assert list(read.columns) == list(frame.columns)
    np.testing.assert_allclose(read["num"].to_numpy(), frame["num"].to_numpy())
    assert read["word"].tolist() == frame["word"].tolist()


def test_import_file_parquet_without_engine_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")

    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(MissingDependencyError) as info:
        import_file(path)
    assert info.value.extra == "parquet"
    assert "deepwater[parquet]" in str(info.value)


def test_import_file_unknown_suffix(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("whatever")
    with pytest.raises(FrameError) as info:
        import_file(path)
    assert "data.xlsx" in str(info.value)
    assert ".csv" in str(info.value) and ".parquet" in str(info.value)


def test_import_file_missing_path(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(FrameError) as info:
        import_file(path)
    assert "nowhere.csv" in str(info.value)
    assert "does not exist" in str(info.value)


def gzipped(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


@pytest.mark.parametrize("name, content, words", [
    ("data.csv", b"", "is empty (0 bytes"),
    ("data.csv", b"\n\n", "is empty"),
    ("data.csv", b"a,b,label\n", "has a header (3 columns: 'a', 'b', 'label') but no rows"),
    ("data.csv.gz", gzipped(b"a,b\n"), "but no rows"),
    ("data.csv", b"a,b\n1,2\n3,4,5\n", "line 3 has 3 fields where the header has 2; give every row as many"),
    ("data.csv", b"a,b\n0,1,2\n1,3,4\n", "its first row has more fields than the header"),  # not an index
    ("data.csv", b'a,b\n1,"2\n', "not a well-formed csv"),  # a quote never closed
    ("data.csv", bytes(range(256)) * 4, "a binary file (it holds NUL bytes), not csv text"),
    ("data.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image, not csv text"),
    ("data.csv", gzipped(b"a,b\n1,2\n"), "gzip-compressed, not csv text; name it .csv.gz"),
    ("data.csv", "a,b\n1,caf\u00e9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    ("data.csv.gz", b"a,b\n1,2\n", "not a readable gzip file"),
    ("data.csv.gz", gzipped(b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(5000)))[:4000],
     "not a readable gzip file"),  # cut short
], ids=["empty", "blank lines", "header only", "gzip header only", "ragged", "ragged first row", "open quote",
        "binary", "png", "gzip named csv", "latin-1", "plain text named gz", "truncated gzip"])
def test_import_file_refuses_a_bad_csv_naming_it(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FrameError) as info:  # never pandas' ParserError, EmptyDataError or UnicodeDecodeError
        import_file(path)
    message = str(info.value)
    assert message.startswith(f"path={str(path)!r}") and words in message
    assert len(message.splitlines()) == 1


def test_import_file_refuses_a_file_that_is_not_parquet(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_text("a,b\n1,2\n")
    pytest.importorskip("pyarrow")
    with pytest.raises(FrameError, match="data.parquet.*is not a readable parquet file"):
        import_file(path)


def test_import_file_still_reads_ragged_short_rows_and_quoted_commas(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('a,b\n1,"x,y"\n2\n')  # a short row is missing values, not malformed
    read = import_file(path)
    assert read["b"].tolist()[0] == "x,y" and read["b"].isna().tolist() == [False, True]


def test_import_file_is_exported_at_top_level():
    assert dw.import_file is import_file


# --------------------------------------------------------------------------- x and y

def test_x_and_y_by_name():
    assert resolve_columns(small_frame(), ["num", "word"], "label") == (["num", "word"], "label")


def test_x_and_y_by_position():
    frame = small_frame()
    assert resolve_columns(frame, [0, 2], 3) == (["num", "word"], "label")
    assert resolve_columns(frame, [0], -1) == (["num"], "label")
    assert resolve_columns(frame, "num", "label") == (["num"], "label")
    assert resolve_columns(frame, 1, "label") == (["count"], "label")


def test_x_none_means_every_other_column_but_ignored():
    frame = small_frame()
    assert resolve_columns(frame, None, "label") == (["num", "count", "word"], "label")
    assert resolve_columns(frame, None, "label", ignored=["count"]) == (["num", "word"], "label")


def test_y_not_in_frame_suggests_a_close_name():
    with pytest.raises(FrameError) as info:
        resolve_columns(small_frame(), None, "lable")
    assert "'lable'" in str(info.value)
    assert "'label'" in str(info.value)


def test_y_position_out_of_range():
    with pytest.raises(FrameError) as info:
        resolve_columns(small_frame(), None, 4)
    assert "4" in str(info.value) and "4 columns" in str(info.value)


def test_y_none_is_refused():
    with pytest.raises(ParameterError):
        resolve_columns(small_frame(), None, None)


def test_bool_is_not_a_column_position():
    with pytest.raises(ParameterError):
        resolve_columns(small_frame(), None, True)


def test_x_naming_missing_columns_lists_them():
    with pytest.raises(FrameError) as info:
        resolve_columns(small_frame(), ["num", "ghost", "phantom"], "label")
    message = str(info.value)
    assert "ghost" in message and "phantom" in message
    assert "'num'" not in message


def test_y_in_x_is_refused():
    with pytest.raises(ParameterError) as info:
        resolve_columns(small_frame(), ["num", "label"], "label")
    assert "'label'" in str(info.value)


def test_y_in_x_by_position_is_refused():
    with pytest.raises(ParameterError):
        resolve_columns(small_frame(), [0, 3], "label")


@pytest.mark.parametrize("frame", [pd.DataFrame(), pd.DataFrame({"a": [], "b": []})])
def test_empty_frame_is_refused(frame):
    with pytest.raises(FrameError) as info:
        check_frame(frame, "training_frame")
    assert "training_frame" in str(info.value) and "empty" in str(info.value)


def test_train_on_empty_frame_is_refused():
    with pytest.raises(FrameError):
        DeepWaterEstimator(**FAST).train(y="label", training_frame=small_frame().iloc[:0])


def test_train_on_something_not_a_frame_is_refused():
    with pytest.raises(FrameError) as info:
        DeepWaterEstimator(**FAST).train(y="label", training_frame=small_frame().to_numpy())
    assert "ndarray" in str(info.value)


def test_train_y_not_in_frame(blobs):
    with pytest.raises(FrameError):
        DeepWaterEstimator(**FAST).train(y="nope", training_frame=blobs)


def test_train_x_missing_columns(blobs):
    with pytest.raises(FrameError) as info:
        DeepWaterEstimator(**FAST).train(x=["x1", "x9"], y="label", training_frame=blobs)
    assert "x9" in str(info.value)


def test_train_x_by_position_uses_those_columns(blobs):
    model = DeepWaterEstimator(epochs=0.2, **FAST).train(x=[0, 1], y=3, training_frame=blobs)
    assert model.summary()["input_shape"] == (2,)


# --------------------------------------------------------------------------- problem type

def test_image_uri_column_first_is_an_image_problem(image_frame):
    frame = image_frame.assign(extra=1.0)
    assert detect_problem_type(frame, ["uri", "extra"], "auto") == "image"
    assert detect_problem_type(frame, ["extra", "uri"], "auto") == "dataset"


def test_uri_column_as_categorical_is_detected(image_frame):
    frame = image_frame.assign(uri=image_frame["uri"].astype("category"))
    assert detect_problem_type(frame, ["uri"], "auto") == "image"


def test_problem_type_image_on_numeric_column_is_refused(blobs):
    with pytest.raises(ParameterError) as info:
        detect_problem_type(blobs, ["x1"], "image")
    assert "'x1'" in str(info.value)
    with pytest.raises(ParameterError):
        DeepWaterEstimator(problem_type="image", **FAST).train(x=["x1"], y="label", training_frame=blobs)


def test_problem_type_dataset_is_kept_for_strings():
    frame = pd.DataFrame({"f": ["a.png", "b.png"]})
    assert detect_problem_type(frame, ["f"], "dataset") == "dataset"


# --------------------------------------------------------------------------- DatasetEncoder

def test_standardisation_gives_mean_zero_and_unit_std(blobs):
    encoder = DatasetEncoder.fit(blobs, ["x1", "x2"], standardize=True, ignore_const_cols=True)
    matrix = encoder.transform(blobs)
    assert matrix.dtype == np.float32 and matrix.shape == (len(blobs), 2)
    raw = blobs[["x1", "x2"]].to_numpy()
    expected = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    np.testing.assert_allclose(matrix, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(matrix.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(matrix.std(axis=0), 1.0, atol=1e-4)


def test_standardize_false_keeps_raw_values(blobs):
    encoder = DatasetEncoder.fit(blobs, ["x1", "x2"], standardize=False, ignore_const_cols=True)
    np.testing.assert_allclose(encoder.transform(blobs), blobs[["x1", "x2"]].to_numpy(), rtol=1e-6)


def test_transform_uses_training_statistics_on_new_frames(blobs):
    encoder = DatasetEncoder.fit(blobs, ["x1"], standardize=True, ignore_const_cols=True)
    new = pd.DataFrame({"x1": [blobs["x1"].mean(), blobs["x1"].mean() + blobs["x1"].std(ddof=0)]})
    np.testing.assert_allclose(encoder.transform(new)[:, 0], [0.0, 1.0], atol=1e-5)


def test_one_hot_encoding_of_categoricals(blobs):
    encoder = DatasetEncoder.fit(blobs, ["x1", "colour"], standardize=True, ignore_const_cols=True)
    matrix = encoder.transform(blobs)
    levels = list(blobs["colour"].cat.categories)
    assert encoder.width == 1 + len(levels)
    expected = pd.get_dummies(blobs["colour"]).reindex(columns=levels).to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(matrix[:, 1:], expected)
    np.testing.assert_array_equal(matrix[:, 1:].sum(axis=1), 1.0)


def test_string_and_bool_columns_are_one_hot_encoded():
    frame = pd.DataFrame({"s": ["q", "p", "q", "r"], "b": [True, False, True, True]})
    encoder = DatasetEncoder.fit(frame, ["s", "b"], standardize=True, ignore_const_cols=True)
    matrix = encoder.transform(frame)
    # levels sorted: s -> p, q, r ; b -> False, True
    expected = np.array([[0, 1, 0, 0, 1], [1, 0, 0, 1, 0], [0, 1, 0, 0, 1], [0, 0, 1, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(matrix, expected)


@pytest.mark.parametrize("standardize", [True, False])
def test_missing_numbers_are_imputed_with_the_training_mean(standardize):
    values = np.array([1.0, np.nan, 4.0, 10.0, np.nan, 3.0])
    frame = pd.DataFrame({"v": values})
    encoder = DatasetEncoder.fit(frame, ["v"], standardize=standardize, ignore_const_cols=True)
    observed = values[~np.isnan(values)]
    mean, std = observed.mean(), observed.std()
    matrix = encoder.transform(frame)[:, 0]
    assert not np.isnan(matrix).any()
    imputed = (mean - mean) / std if standardize else mean
    np.testing.assert_allclose(matrix[np.isnan(values)], imputed, atol=1e-6)
    expected_observed = (observed - mean) / std if standardize else observed
    np.testing.assert_allclose(matrix[~np.isnan(values)], expected_observed, rtol=1e-5)
    # a new frame is imputed with the training mean, not its own
    new = pd.DataFrame({"v": [np.nan, 100.0, 100.0]})
    np.testing.assert_allclose(encoder.transform(new)[0, 0], imputed, atol=1e-5)


def test_missing_category_encodes_to_zeros():
    frame = pd.DataFrame({"c": ["u", None, "v", "u"]})
    matrix = DatasetEncoder.fit(frame, ["c"], True, True).transform(frame)
    np.testing.assert_array_equal(matrix, [[1, 0], [0, 0], [0, 1], [1, 0]])


def test_constant_columns_are_dropped_with_ignore_const_cols():
    frame = pd.DataFrame({"k": [7.0] * 4, "kc": ["same"] * 4, "v": [1.0, 2.0, 3.0, 5.0]})
    encoder = DatasetEncoder.fit(frame, ["k", "kc", "v"], standardize=True, ignore_const_cols=True)
    assert encoder.dropped == ["k", "kc"]
    assert encoder.columns == ["v"]
    assert encoder.transform(frame).shape == (4, 1)


def test_constant_columns_are_kept_without_ignore_const_cols():
    frame = pd.DataFrame({"k": [7.0] * 4, "kc": ["same"] * 4, "v": [1.0, 2.0, 3.0, 5.0]})
    encoder = DatasetEncoder.fit(frame, ["k", "kc", "v"], standardize=False, ignore_const_cols=False)
    assert encoder.dropped == []
    matrix = encoder.transform(frame)
    assert matrix.shape == (4, 3)
    np.testing.assert_array_equal(matrix[:, 0], 7.0)  # numeric columns come first, then one-hot
    np.testing.assert_array_equal(matrix[:, 2], 1.0)
    standardised = DatasetEncoder.fit(frame, ["k", "v"], standardize=True, ignore_const_cols=False)
    column = standardised.transform(frame)[:, 0]
    assert np.isfinite(column).all()
    np.testing.assert_array_equal(column, 0.0)


def test_every_predictor_constant_is_an_error():
    frame = pd.DataFrame({"k": [1.0, 1.0, 1.0]})
    with pytest.raises(FrameError) as info:
        DatasetEncoder.fit(frame, ["k"], True, True)
    assert "'k'" in str(info.value)


def test_ignore_const_cols_changes_the_model_input_width(blobs):
    frame = blobs.assign(constant=3.0)
    dropped = DeepWaterEstimator(epochs=0.1, **FAST).train(y="label", training_frame=frame)
    kept = DeepWaterEstimator(epochs=0.1, ignore_const_cols=False, **FAST).train(y="label", training_frame=frame)
    assert kept.summary()["input_shape"][0] == dropped.summary()["input_shape"][0] + 1


def test_unseen_level_encodes_to_zeros(blobs):
    encoder = DatasetEncoder.fit(blobs, ["colour"], True, True)
    new = pd.DataFrame({"colour": ["purple", "red"]})
    matrix = encoder.transform(new)
    np.testing.assert_array_equal(matrix[0], 0.0)
    assert matrix[1].sum() == 1.0


def test_unseen_level_at_predict_does_not_crash(blobs):
    model = DeepWaterEstimator(epochs=1, **FAST).train(y="label", training_frame=blobs)
    new = blobs.head(5).copy()
    new["colour"] = ["purple", "red", "orange", "blue", "green"]
    predictions = model.predict(new)
    assert len(predictions) == 5
    probabilities = predictions[["a", "b", "c"]].to_numpy()
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_predict_frame_missing_a_training_column_names_it(blobs):
    model = DeepWaterEstimator(epochs=0.2, **FAST).train(y="label", training_frame=blobs)
    with pytest.raises(FrameError) as info:
        model.predict(blobs.drop(columns=["x2"]))
    assert "x2" in str(info.value)


def test_predict_does_not_need_the_response(blobs):
    model = DeepWaterEstimator(epochs=0.2, **FAST).train(y="label", training_frame=blobs)
    assert len(model.predict(blobs.drop(columns=["label"]))) == len(blobs)


def test_performance_on_frame_without_response_names_it(blobs):
    model = DeepWaterEstimator(epochs=0.2, **FAST).train(y="label", training_frame=blobs)
    with pytest.raises(FrameError) as info:
        model.model_performance(blobs.drop(columns=["label"]))
    assert "'label'" in str(info.value)


# --------------------------------------------------------------------------- Response

def test_missing_labels_are_refused(blobs):
    frame = blobs.copy()
    frame.loc[[3, 7], "label"] = np.nan
    with pytest.raises(FrameError) as info:
        DeepWaterEstimator(**FAST).train(y="label", training_frame=frame)
    assert "'label'" in str(info.value) and "2 missing" in str(info.value)


def test_missing_numeric_response_is_refused(linear):
    frame = linear.copy()
    frame.loc[0, "y"] = np.nan
    with pytest.raises(FrameError):
        DeepWaterEstimator(**FAST).train(y="y", training_frame=frame)


def test_single_class_response_is_refused(blobs):
    frame = blobs.assign(label="a")
    with pytest.raises(FrameError) as info:
        DeepWaterEstimator(**FAST).train(y="label", training_frame=frame)
    assert "two" in str(info.value)


def test_response_encodes_classes_in_sorted_order():
    frame = pd.DataFrame({"y": ["dog", "cat", "emu", "cat"]})
    response = Response.fit(frame, "y", standardize=True)
    assert response.kind == CLASSIFICATION
    assert response.classes == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(response.encode(frame), [1, 0, 2, 0])
    probs = np.eye(3)[[2, 0]]
    assert response.decode(probs).tolist() == ["emu", "cat"]


def test_response_keeps_categorical_order_and_drops_unused_levels():
    frame = pd.DataFrame({"y": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "mid", "hi"])})
    response = Response.fit(frame, "y", standardize=True)
    assert response.classes == ["lo", "hi"]


def test_response_refuses_unseen_classes():
    response = Response.fit(pd.DataFrame({"y": ["a", "b"]}), "y", True)
    with pytest.raises(FrameError) as info:
        response.encode(pd.DataFrame({"y": ["a", "zebra"]}))
    assert "zebra" in str(info.value)


def test_numeric_response_is_standardised_and_decoded_back(linear):
    response = Response.fit(linear, "y", standardize=True)
    assert response.kind == REGRESSION
    encoded = response.encode(linear)
    assert abs(float(encoded.mean())) < 1e-4
    assert abs(float(encoded.std()) - 1.0) < 1e-4
    np.testing.assert_allclose(response.decode(encoded[:, None]), linear["y"].to_numpy(), rtol=1e-5)
    raw = Response.fit(linear, "y", standardize=False)
    np.testing.assert_allclose(raw.encode(linear), linear["y"].to_numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- weights

def test_negative_weights_are_refused(blobs):
    frame = blobs.assign(w=1.0)
    frame.loc[5, "w"] = -0.5
    with pytest.raises(FrameError) as info:
        DeepWaterEstimator(weights_column="w", **FAST).train(y="label", training_frame=frame)
    assert "'w'" in str(info.value)


def test_missing_weights_are_refused(blobs):
    frame = blobs.assign(w=1.0)
    frame.loc[5, "w"] = np.nan
    with pytest.raises(FrameError):
        DeepWaterEstimator(weights_column="w", **FAST).train(y="label", training_frame=frame)


def test_weights_column_not_in_frame(blobs):
    with pytest.raises(FrameError) as info:
        DeepWaterEstimator(weights_column="wt", **FAST).train(y="label", training_frame=blobs)
    assert "'wt'" in str(info.value)


def test_weights_column_is_not_a_predictor(blobs):
    frame = blobs.assign(w=np.linspace(0.5, 2.0, len(blobs)))
    model = DeepWaterEstimator(weights_column="w", epochs=0.2, **FAST).train(y="label", training_frame=frame)
    # x1, x2 and three colour levels; w is not an input
    assert model.summary()["input_shape"] == (5,)


def _weight_run(frame: pd.DataFrame) -> DeepWaterEstimator:
    # One mini-batch holds the whole frame, so the shuffle order cannot change the step; the rate does
    # not anneal with samples seen, and nothing depends on the scoring time.
    return DeepWaterEstimator(
        weights_column="w", epochs=4, mini_batch_size=1000, learning_rate=0.05, learning_rate_annealing=0.0,
        stopping_rounds=0, overwrite_with_best_model=False, gpu=False, quiet_mode=True, hidden=[8], seed=7,
    ).train(y="label", training_frame=frame)


def test_zero_weight_rows_do_not_influence_training(blobs):
    real = blobs.assign(w=1.0)
    # Garbage rows: the same features (so the standardisation statistics do not change) with wrong
    # labels, at weight 0.
    garbage = blobs.assign(w=0.0)
    garbage["label"] = pd.Categorical(np.roll(blobs["label"].to_numpy(), 1), categories=blobs["label"].cat.categories)
    padded = pd.concat([real, garbage], ignore_index=True)
    clean = _weight_run(real)
    noisy = _weight_run(padded)
    probabilities = ["a", "b", "c"]
    np.testing.assert_allclose(noisy.predict(blobs)[probabilities].to_numpy(),
                               clean.predict(blobs)[probabilities].to_numpy(), atol=1e-5)
    assert noisy.model_performance(train=True).logloss() == pytest.approx(
        clean.model_performance(train=True).logloss(), rel=1e-4)


def test_weighted_metrics_equal_sklearn(blobs):
    rng = np.random.default_rng(3)
    frame = blobs.assign(w=rng.uniform(0.0, 3.0, len(blobs)))
    model = DeepWaterEstimator(weights_column="w", epochs=1, **FAST).train(y="label", training_frame=frame)
    performance = model.model_performance(frame)
    probabilities = model.predict(frame)[["a", "b", "c"]].to_numpy()
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)  # float32 sums are off by ~1e-7
    codes = frame["label"].cat.codes.to_numpy()
    weights = frame["w"].to_numpy()
    assert performance.logloss() == pytest.approx(
        skm.log_loss(codes, probabilities, labels=[0, 1, 2], sample_weight=weights), rel=1e-4)
    assert performance.classification_error() == pytest.approx(
        1.0 - skm.accuracy_score(codes, probabilities.argmax(axis=1), sample_weight=weights), abs=1e-9)
    onehot = np.eye(3)[codes]
    mse = np.average(((onehot - probabilities) ** 2).sum(axis=1), weights=weights)
    assert performance.mse() == pytest.approx(mse, rel=1e-4)
    unweighted = model.model_performance(frame.drop(columns=["w"]))
    assert unweighted.logloss() == pytest.approx(skm.log_loss(codes, probabilities, labels=[0, 1, 2]), rel=1e-4)


def test_weighted_regression_metrics_equal_sklearn(linear):
    rng = np.random.default_rng(4)
    frame = linear.assign(w=rng.uniform(0.1, 2.0, len(linear)))
    model = DeepWaterEstimator(weights_column="w", epochs=2, learning_rate=0.01, **FAST).train(
        y="y", training_frame=frame)
    performance = model.model_performance(frame)
    predicted = model.predict(frame)["predict"].to_numpy()
    y, w = frame["y"].to_numpy(), frame["w"].to_numpy()
    assert performance.mse() == pytest.approx(skm.mean_squared_error(y, predicted, sample_weight=w), rel=1e-3)
    assert performance.mae() == pytest.approx(skm.mean_absolute_error(y, predicted, sample_weight=w), rel=1e-3)
    assert performance.r2() == pytest.approx(skm.r2_score(y, predicted, sample_weight=w), abs=1e-3)


# --------------------------------------------------------------------------- future pandas

@pytest.mark.filterwarnings("error::DeprecationWarning", "error::FutureWarning")
def test_unseen_level_encoding_uses_no_deprecated_pandas_behaviour(blobs):
    encoder = DatasetEncoder.fit(blobs, ["colour"], True, True)
    matrix = encoder.transform(pd.DataFrame({"colour": ["purple", "red"]}))
    np.testing.assert_array_equal(matrix[0], 0.0)


@pytest.mark.filterwarnings("error::DeprecationWarning", "error::FutureWarning")
def test_unseen_class_check_uses_no_deprecated_pandas_behaviour():
    response = Response.fit(pd.DataFrame({"y": ["a", "b"]}), "y", True)
    with pytest.raises(FrameError):
        response.encode(pd.DataFrame({"y": ["a", "zebra"]}))
