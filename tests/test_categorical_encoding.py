"""High-cardinality categoricals: categorical_encoding (H2O's AUTO/OneHot*, Binary, LabelEncoder),
max_categorical_features (hashing), and a warning naming the fix before a huge design matrix is built."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from deepwater.data import encoders as design
from deepwater.data.encoders import DatasetEncoder
from deepwater.errors import ParameterError


@pytest.fixture(scope="module")
def many_levels() -> pd.DataFrame:
    """3,000 rows whose 'city' has 1,000 levels; the label follows the city's number modulo 2."""
    rng = np.random.default_rng(0)
    city = rng.integers(0, 1000, size=3000)
    return pd.DataFrame({"city": pd.Categorical([f"city{c}" for c in city]), "x": rng.normal(size=3000),
                         "label": pd.Categorical(np.where(city % 2 == 0, "even", "odd"))})


@pytest.mark.parametrize("encoding", ["AUTO", "OneHotExplicit", "Binary", "LabelEncoder"])
def test_each_encoding_has_its_width(many_levels, encoding):
    levels = many_levels["city"].nunique()  # about 950 of the 1,000 numbers drawn
    width = 1 + {"Binary": levels.bit_length(), "LabelEncoder": 1}.get(encoding, levels)
    encoder = DatasetEncoder.fit(many_levels, ["x", "city"], True, True, encoding)
    assert encoder.width == width
    assert encoder.transform(many_levels.iloc[:5]).shape == (5, width)


def test_binary_digits_give_each_level_its_own_code_and_unseen_levels_zeros(many_levels):
    encoder = DatasetEncoder.fit(many_levels, ["city"], True, True, "Binary")
    block = encoder.transform(many_levels)
    codes = block @ (1 << np.arange(block.shape[1]))
    levels = many_levels["city"].astype(str).to_numpy()
    assert len(set(zip(levels, codes))) == len(set(levels))  # one code per level
    unseen = encoder.transform(pd.DataFrame({"city": ["elsewhere"]}))
    assert (unseen == 0).all()


def test_max_categorical_features_hashes_levels_into_that_many_columns(many_levels):
    encoder = DatasetEncoder.fit(many_levels, ["city"], True, True, max_categorical_features=64)
    block = encoder.transform(many_levels)
    assert block.shape == (3000, 64) and (block.sum(axis=1) == 1).all()
    again = encoder.transform(many_levels.iloc[::-1])[::-1]
    np.testing.assert_array_equal(block, again)  # a level always lands in the same column


def test_a_model_trains_and_predicts_with_hashed_levels_and_saves(many_levels, tmp_path):
    model = dw.DeepWaterEstimator(hidden=[8], epochs=1, gpu=False, quiet_mode=True, seed=1,
                                  max_categorical_features=32).train(y="label", training_frame=many_levels)
    assert model.summary()["input_shape"] == (33,)
    loaded = dw.load_model(dw.save_model(model, tmp_path))
    np.testing.assert_allclose(loaded.predict(many_levels).iloc[:, 1:], model.predict(many_levels).iloc[:, 1:],
                               atol=1e-6)


def test_a_huge_one_hot_matrix_warns_with_the_fix(many_levels, monkeypatch):
    monkeypatch.setattr(design, "LARGE_MATRIX_BYTES", 1_000_000)
    with pytest.warns(UserWarning, match="column 'city' alone is 9[0-9][0-9] wide.*categorical_encoding='Binary'"):
        DatasetEncoder.fit(many_levels, ["x", "city"], True, True)


@pytest.mark.parametrize("params,named", [({"categorical_encoding": "Eigen"}, "categorical_encoding='Eigen'"),
                                          ({"max_categorical_features": 0}, "max_categorical_features=0")])
def test_bad_values_name_the_parameter(params, named):
    with pytest.raises(ParameterError, match=named):
        dw.DeepWaterEstimator(**params)


@pytest.mark.parametrize("values, share", [([3, "a"], "50%"), ([3, "c", "a", "b"], "25%"), ([3, 4.5], "100%")],
                         ids=["number_and_known_text", "number_and_new_text", "numbers_only"])
def test_numbers_in_a_text_column_at_predict_warn_naming_the_column_and_their_share(values, share):
    """A number among a text column's values is a type change, not a new level, even beside text the model knows
    or new text (issue 24's probe): warned with the column and the share of numbers; it encodes as unseen."""
    train = pd.DataFrame({"colour": ["a", "b"] * 5, "x": np.arange(10.0)})
    encoder = DatasetEncoder.fit(train, ["colour", "x"], True, True)
    scored = pd.DataFrame({"colour": pd.Series(values, dtype=object), "x": 1.0})
    with pytest.warns(UserWarning, match=rf"column 'colour': {share} of its values \(3 of type int, ...\) are levels "
                                         r"the model never saw, and of another type than the levels it learnt \(str"):
        block = encoder.transform(scored)
    assert not block[0, 1:].any()  # the number: no level's one-hot column
