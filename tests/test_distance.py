"""deepwater.distance and deepwater.nearest against scipy's cdist, brute force, and bad input."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

import deepwater as dw
from deepwater import DeviceError, FrameError, ParameterError

distance_module = importlib.import_module("deepwater.analysis.distances")
distance_engines = importlib.import_module("deepwater.runtime.distance_engines")
available_memory = importlib.import_module("deepwater.runtime.memory").available_memory
MEASURES = ["l1", "l2", "cosine", "cosine_sq"]


def reference(x: np.ndarray, y: np.ndarray, measure: str) -> np.ndarray:
    """The booklet's formulas through scipy: cityblock, euclidean, 1 - cosine distance (and its square)."""
    if measure == "l1":
        return cdist(x, y, "cityblock")
    if measure == "l2":
        return cdist(x, y, "euclidean")
    cosine = 1.0 - cdist(x, y, "cosine")
    return cosine ** 2 if measure == "cosine_sq" else cosine


def brute_force(x: np.ndarray, y: np.ndarray, k: int, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours by a stable argsort of the full matrix: ties go to the earlier row of Y."""
    full = reference(x, y, measure)
    order = np.argsort(-full if measure.startswith("cosine") else full, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(full, order, axis=1)


@pytest.fixture
def xy():
    rng = np.random.default_rng(11)
    x = pd.DataFrame(rng.normal(size=(70, 13)), index=[f"q{i}" for i in range(70)])
    y = pd.DataFrame(rng.normal(loc=0.3, size=(45, 13)), index=np.arange(100, 145))
    return x, y


# --------------------------------------------------------------------------- distance()

@pytest.mark.parametrize("measure", MEASURES)
def test_distance_matches_cdist(xy, measure):
    x, y = xy
    result = dw.distance(x, y, measure)
    assert result.shape == (70, 45)
    assert result.index.equals(x.index) and result.columns.equals(y.index)
    np.testing.assert_allclose(result.to_numpy(), reference(x.to_numpy(), y.to_numpy(), measure),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("measure", MEASURES)
def test_float32_input_agrees_within_1e4(measure):
    rng = np.random.default_rng(3)
    x = rng.random((60, 256), dtype=np.float32)  # all positive: l2's worst case for cancellation
    y = rng.random((40, 256), dtype=np.float32)
    result = dw.distance(x, y, measure).to_numpy()
    np.testing.assert_allclose(result, reference(x.astype(np.float64), y.astype(np.float64), measure), rtol=1e-4)


def test_cosine_sq_is_cosine_squared(xy):
    x, y = xy
    np.testing.assert_allclose(dw.distance(x, y, "cosine_sq"), dw.distance(x, y, "cosine") ** 2, rtol=1e-12)


@pytest.mark.parametrize("measure", MEASURES)
def test_block_sizes_agree(xy, measure):
    x, y = xy
    whole = dw.distance(x, y, measure, block_rows=1000).to_numpy()
    for rows in (1, 2, 7, 69):
        # equal up to the last bits BLAS rounds differently for different block shapes
        np.testing.assert_allclose(dw.distance(x, y, measure, block_rows=rows).to_numpy(), whole, rtol=1e-12, atol=1e-14)


def test_arrays_get_positions_as_labels():
    x, y = np.eye(3), np.ones((2, 3))
    result = dw.distance(x, y, "l2")
    assert list(result.index) == [0, 1, 2] and list(result.columns) == [0, 1]
    np.testing.assert_allclose(result.to_numpy(), np.full((3, 2), np.sqrt(2.0)))


def test_zero_rows_have_nan_cosine_and_zero_l2():
    x = np.array([[0.0, 0.0], [1.0, 0.0]])
    y = np.array([[0.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    with pytest.warns(UserWarning, match=r"1 row\(s\) of X and 1 of Y are all zeros"):
        cosine = dw.distance(x, y, "cosine").to_numpy()
    assert np.isnan(cosine[0]).all() and np.isnan(cosine[:, 0]).all()
    np.testing.assert_allclose(cosine[1, 1:], [0.0, 1.0])
    assert dw.distance(x, y, "l2").iloc[0, 0] == 0.0


def test_out_writes_a_memmap_equal_to_the_frame(xy, tmp_path):
    x, y = xy
    path = tmp_path / "d.npy"
    written = dw.distance(x, y, "l2", out=path, block_rows=16)
    assert isinstance(written, np.memmap)
    np.testing.assert_array_equal(np.asarray(written), dw.distance(x, y, "l2", block_rows=16).to_numpy())
    np.testing.assert_array_equal(np.load(path), np.asarray(written))
    assert os.listdir(tmp_path) == ["d.npy"]  # no temporary file left behind


def test_out_leaves_no_file_when_it_fails(xy, tmp_path, monkeypatch):
    x, y = xy
    calls = []

    def failing_block(self, xp, yp, measure, out):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # interrupted half way
        out[...] = 0.0

    monkeypatch.setattr(distance_engines.NumpyEngine, "block", failing_block)
    with pytest.raises(KeyboardInterrupt):
        dw.distance(x, y, "l2", out=tmp_path / "d.npy", block_rows=10)
    assert os.listdir(tmp_path) == []


def test_torch_engine_matches_numpy(xy):
    """The torch backend's GPU engine (run here on the CPU) gives numpy's numbers."""
    engines = pytest.importorskip("deepwater.backends.torch.distances")
    x, y = xy
    xs, ys = distance_module._pair(x, y)
    for measure in MEASURES:
        result = np.empty((len(x), len(y)))
        distance_module._fill(engines.TorchDistanceEngine("cpu"), xs, ys, measure, 16, result)
        np.testing.assert_allclose(result, dw.distance(x, y, measure).to_numpy(), rtol=1e-10, atol=1e-12)
        single = np.empty((len(x), len(y)), dtype=np.float32)
        distance_module._fill(engines.TorchDistanceEngine("cpu"), xs, ys, measure, 16, single)
        np.testing.assert_allclose(single, dw.distance(x, y, measure, dtype="float32").to_numpy(), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- nearest()

@pytest.mark.parametrize("measure", MEASURES)
def test_nearest_matches_brute_force(xy, measure):
    x, y = xy
    result = dw.nearest(x, y, 5, measure, block_rows=9)
    order, values = brute_force(x.to_numpy(), y.to_numpy(), 5, measure)
    assert list(result.columns) == [f"neighbour_{i}" for i in range(1, 6)] + [f"distance_{i}" for i in range(1, 6)]
    assert result.index.equals(x.index)
    np.testing.assert_array_equal(result.filter(like="neighbour").to_numpy(), y.index.to_numpy()[order])
    np.testing.assert_allclose(result.filter(like="distance").to_numpy(), values, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("measure", MEASURES)
def test_nearest_breaks_ties_by_position(measure):
    rng = np.random.default_rng(5)
    y = rng.normal(size=(30, 6))
    y[[4, 11, 23]] = y[17]  # four copies of one row
    y[[2, 9]] = 2.0 * y[26]  # cosine ties: same direction, other length
    x = np.vstack([y[17], y[26], y[3] + 1e-3, rng.normal(size=(5, 6))])
    for k, rows in ((1, 3), (3, 1), (8, 100)):
        result = dw.nearest(x, y, k, measure, block_rows=rows)
        order, values = brute_force(x, y, k, measure)
        np.testing.assert_array_equal(result.filter(like="neighbour").to_numpy(), order)
        np.testing.assert_allclose(result.filter(like="distance").to_numpy(), values, rtol=1e-9, atol=1e-12)
    assert list(dw.nearest(x[:1], y, 4, "l2").iloc[0, :4]) == [4, 11, 17, 23]
    assert (dw.nearest(x[:1], y, 4, "l2").iloc[0, 4:] == 0.0).all()  # exact, no cancellation


def test_nearest_over_several_y_blocks(monkeypatch):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(20, 4)), np.round(rng.normal(size=(50, 4)), 1)
    y[40] = y[3]
    x[0] = y[3]
    monkeypatch.setattr(distance_module, "CANDIDATE_SLACK", 1)
    monkeypatch.setattr(distance_module, "Y_BLOCK_ROWS", 7)
    result = dw.nearest(x, y, 6, "l1", block_rows=6)
    order, _ = brute_force(x, y, 6, "l1")
    np.testing.assert_array_equal(result.filter(like="neighbour").to_numpy(), order)


def test_k_larger_than_y_warns_and_returns_all(xy):
    x, y = xy
    with pytest.warns(UserWarning, match="k=50 is larger than Y's 45 rows"):
        result = dw.nearest(x, y, 50)
    assert result.shape == (70, 90)
    order, _ = brute_force(x.to_numpy(), y.to_numpy(), 45, "l2")
    np.testing.assert_array_equal(result.filter(like="neighbour").to_numpy(), y.index.to_numpy()[order])


@pytest.mark.parametrize("k", [0, -2, 1.5, True, "3", None])
def test_invalid_k(xy, k):
    x, y = xy
    with pytest.raises(ParameterError, match=r"k=.* must be a whole number >= 1"):
        dw.nearest(x, y, k)


# --------------------------------------------------------------------------- the accessor

def test_accessor(xy):
    x, y = xy
    pd.testing.assert_frame_equal(x.dw.distance(y, "cosine"), dw.distance(x, y, "cosine"))
    pd.testing.assert_frame_equal(x.dw.nearest(y, 3, "l1"), dw.nearest(x, y, 3, measure="l1"))
    pd.testing.assert_frame_equal(x.dw.nearest(y, k=2), dw.nearest(x, y, 2))


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call", [dw.distance, lambda x, y, **kw: dw.nearest(x, y, 2, **kw)], ids=["distance", "nearest"])
class TestBadInput:
    def test_mismatched_widths(self, call, xy):
        x, y = xy
        with pytest.raises(FrameError, match="X has 13 columns but Y has 12"):
            call(x, y.iloc[:, :12])

    def test_non_numeric_columns_are_named(self, call, xy):
        x, y = xy
        y = y.assign(colour="red", size=pd.Categorical(["s"] * len(y)))
        with pytest.raises(FrameError, match=r"Y has 2 non-numeric column\(s\): 'colour', 'size'"):
            call(x.assign(colour=1.0, size=2.0), y)

    def test_nan_rows_are_named(self, call, xy):
        x, y = xy
        x = x.copy()
        x.iloc[[3, 8], 2] = np.nan
        x.iloc[9, 0] = np.inf
        with pytest.raises(FrameError, match=r"X has missing \(NaN\) or infinite values in 3 row\(s\): 'q3', 'q8', 'q9'"):
            call(x, y)

    def test_unknown_measure_lists_the_allowed(self, call, xy):
        x, y = xy
        with pytest.raises(ParameterError, match=r"measure='euclidean' is not a known measure; "
                                                  r"use one of 'l1', 'l2', 'cosine', 'cosine_sq'"):
            call(x, y, measure="euclidean")

    @pytest.mark.parametrize("empty", [pd.DataFrame(), pd.DataFrame({"a": []}), np.empty((0, 13)),
                                       np.empty((4, 0))])
    def test_empty(self, call, xy, empty):
        x, _ = xy
        with pytest.raises(FrameError, match="Y is empty"):
            call(x, empty)

    def test_not_two_dimensional(self, call, xy):
        x, _ = xy
        with pytest.raises(FrameError, match=r"Y must be 2-D .* reshape"):
            call(x, np.zeros(13))
        with pytest.raises(FrameError, match="X must be a pandas DataFrame or a 2-D numpy array, got dict"):
            call({"a": [1]}, x)
        with pytest.raises(FrameError, match="dtype <U1, which is not numeric"):
            call(np.array([["a", "b"]]), np.zeros((1, 2)))

    def test_complex_columns_are_named(self, call, xy):
        x, y = xy
        with pytest.raises(FrameError, match=r"Y has 1 complex-valued column\(s\): 'z'; distances need real numbers"):
            call(x.assign(z=1.0), y.assign(z=y[0] + 1j))
        with pytest.raises(FrameError, match=r"X has complex values \(dtype complex128, columns 0..12\).*np.abs\(X\)"):
            call(x.to_numpy() + 0j, y)

    @pytest.mark.parametrize("rows", [0, -1, 2.5, True])
    def test_block_rows(self, call, xy, rows):
        x, y = xy
        with pytest.raises(ParameterError, match=r"block_rows=.* must be a whole number >= 1"):
            call(x, y, block_rows=rows)

    def test_devices(self, call, xy):
        x, y = xy
        with pytest.raises(ParameterError, match="device='tpu' is not a device"):
            call(x, y, device="tpu")
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        with pytest.raises(DeviceError, match=r"device='cuda:0' but torch sees no GPU.*device=None"):
            call(x, y, device="cuda:0")


def test_bad_out_paths(xy, tmp_path):
    x, y = xy
    with pytest.raises(ParameterError, match=r"out=.*must end in '.npy'"):
        dw.distance(x, y, out=tmp_path / "d.csv")
    with pytest.raises(ParameterError, match="does not exist; create it first"):
        dw.distance(x, y, out=tmp_path / "missing" / "d.npy")
    with pytest.raises(ParameterError, match="must be a path ending in '.npy'"):
        dw.distance(x, y, out=3)


def test_integer_and_nullable_columns_are_numbers():
    x = pd.DataFrame({"a": [1, 2], "b": pd.array([3, 4], dtype="Int64")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = dw.distance(x, x, "l1")
    np.testing.assert_array_equal(result.to_numpy(), [[0.0, 2.0], [2.0, 0.0]])


# --------------------------------------------------------------------------- precision and kernels

def float32_pair(seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.5, 1.0, size=(50, 300)).astype(np.float32), rng.normal(0.5, 1.0, size=(30, 300)).astype(np.float32)


@pytest.mark.parametrize("measure", MEASURES)
def test_float32_stays_float32_and_float64_on_request(measure):
    x, y = float32_pair()
    exact = reference(x.astype(np.float64), y.astype(np.float64), measure)
    single = dw.distance(x, y, measure)
    assert single.dtypes.unique().tolist() == [np.float32]
    np.testing.assert_allclose(single.to_numpy(), exact, rtol=1e-4)
    double = dw.distance(x, y, measure, dtype="float64")
    assert double.dtypes.unique().tolist() == [np.float64]
    np.testing.assert_allclose(double.to_numpy(), exact, rtol=1e-9)
    asked = dw.distance(x.astype(np.float64), y, measure, dtype=np.float32)
    assert asked.dtypes.unique().tolist() == [np.float32]


def test_float32_near_duplicates_stay_within_1e4():
    """|x|^2 + |y|^2 - 2x.y cancels for rows close together; those pairs are re-computed from differences."""
    rng = np.random.default_rng(6)
    y = rng.normal(3.0, 1.0, size=(40, 512)).astype(np.float32)
    x = np.vstack([y, y + rng.normal(scale=1e-3, size=y.shape).astype(np.float32)])
    result = dw.distance(x, y, "l2").to_numpy()
    np.testing.assert_array_equal(np.diag(result[:40]), 0.0)
    np.testing.assert_allclose(result, reference(x.astype(np.float64), y.astype(np.float64), "l2"), rtol=1e-4)


@pytest.mark.parametrize("measure", MEASURES)
def test_float32_blocks_give_the_one_block_result(measure, tmp_path):
    x, y = float32_pair()
    whole = dw.distance(x, y, measure, block_rows=len(x)).to_numpy()
    for rows in (1, 3, 17):
        np.testing.assert_array_equal(dw.distance(x, y, measure, block_rows=rows).to_numpy(), whole)
    written = dw.distance(x, y, measure, block_rows=7, out=tmp_path / "d.npy")
    assert written.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(written), whole)


@pytest.mark.parametrize("dtype", ["float16", "int32", 3, "double precision"])
def test_bad_dtype_names_the_choices(xy, dtype):
    x, y = xy
    with pytest.raises(ParameterError, match=r"dtype=.* use None \(the inputs' precision.*'float32' or 'float64'"):
        dw.distance(x, y, dtype=dtype)


@pytest.fixture
def without_numba(monkeypatch):
    """deepwater.runtime.l1_kernels as on a machine where numba is not installed."""
    kernels = importlib.import_module("deepwater.runtime.l1_kernels")
    monkeypatch.setitem(sys.modules, "numba", None)
    kernels._compiled.cache_clear()
    yield kernels
    kernels._compiled.cache_clear()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l1_numpy_form_matches_the_compiled_kernel(without_numba, dtype):
    x, y = (v.astype(dtype) for v in float32_pair())
    assert without_numba.kernel_name() == "numpy"
    numpy_form = dw.distance(x, y, "l1").to_numpy()
    without_numba._compiled.cache_clear()
    sys.modules.pop("numba")
    pytest.importorskip("numba")
    assert without_numba.kernel_name() == "numba"
    np.testing.assert_allclose(dw.distance(x, y, "l1").to_numpy(), numpy_form, rtol=1e-6)
    np.testing.assert_allclose(numpy_form, reference(x, y, "l1"), rtol=1e-6)


def test_distances_run_without_torch_or_numba():
    """The module imports no framework: l1 (numpy's form) and the products work where neither is installed."""
    script = ("import sys\n"
              "class Block:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.partition('.')[0] in ('torch', 'numba'):\n"
              "            raise ImportError(name + ' is blocked')\n"
              "sys.meta_path.insert(0, Block())\n"
              "import numpy as np, deepwater as dw\n"
              "from scipy.spatial.distance import cdist\n"
              "x = np.random.default_rng(0).random((9, 40)); y = x[:5] + 1\n"
              "assert np.allclose(dw.distance(x, y, 'l1').to_numpy(), cdist(x, y, 'cityblock'), rtol=1e-12)\n"
              "assert np.allclose(dw.distance(x, y, 'l2').to_numpy(), cdist(x, y), rtol=1e-12)\n"
              "from deepwater.runtime import l1_kernels\n"
              "assert l1_kernels.kernel_name() == 'numpy' and 'torch' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- huge values, huge results

HUGE = {np.float32: 1e20, np.float64: 1e160}  # their squares overflow the dtype


def scaled_reference(x: np.ndarray, y: np.ndarray, measure: str, exponent: int) -> np.ndarray:
    """reference() on x and y divided by 2**exponent in float64 (exact), l1 and l2 multiplied back."""
    down = reference(np.ldexp(x.astype(np.float64), -exponent), np.ldexp(y.astype(np.float64), -exponent), measure)
    return down if measure.startswith("cosine") else np.ldexp(down, exponent)


def huge_pair(dtype: type, seed: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.5, 1.0, size=(40, 24)) * HUGE[dtype]
    y = rng.normal(0.5, 1.0, size=(30, 24)) * HUGE[dtype]
    x[:5] = y[:5] * (1.0 + 1e-3 * rng.normal(size=(5, 24)))  # near-duplicates: their order is the fine one
    return x.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("measure", MEASURES)
def test_values_whose_squares_overflow_give_finite_exact_distances(measure, dtype):
    x, y = huge_pair(dtype)
    expected = scaled_reference(x, y, measure, int(np.log2(HUGE[dtype])))
    result = dw.distance(x, y, measure).to_numpy()
    assert result.dtype == dtype and np.isfinite(result).all()
    tolerance = {"rtol": 1e-4, "atol": 1e-6 if measure.startswith("cosine") else 0} if dtype == np.float32 else \
        {"rtol": 1e-9}
    np.testing.assert_allclose(result, expected, **tolerance)
    np.testing.assert_array_equal(dw.distance(x, y, measure, block_rows=7).to_numpy(), result)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("measure", MEASURES)
def test_nearest_orders_values_whose_squares_overflow(measure, dtype):
    x, y = huge_pair(dtype)
    expected = scaled_reference(x, y, measure, int(np.log2(HUGE[dtype])))
    order = np.argsort(-expected if measure.startswith("cosine") else expected, axis=1, kind="stable")[:, :4]
    result = dw.nearest(x, y, 4, measure)
    np.testing.assert_array_equal(result.filter(like="neighbour").to_numpy(), order)
    np.testing.assert_allclose(result.filter(like="distance").to_numpy(), np.take_along_axis(expected, order, axis=1),
                               rtol=1e-9)


def test_l1_sums_near_the_largest_float():
    """float32 values near 1e37 sum past float32's range over 64 features: float64 holds them, float32 refuses."""
    rng = np.random.default_rng(2)
    x, y = (rng.uniform(-1e37, 1e37, size=(6, 64)).astype(np.float32) for _ in range(2))
    expected = scaled_reference(x, y, "l1", 123)
    assert expected.max() > np.finfo(np.float32).max
    np.testing.assert_allclose(dw.distance(x, y, "l1", dtype="float64").to_numpy(), expected, rtol=1e-12)
    with pytest.raises(FrameError, match=r"X and Y hold values up to 1e\+37: some l1 distances between them exceed "
                                         r"the largest float32 .*dtype='float64'"):
        dw.distance(x, y, "l1")
    wide = rng.uniform(0.0, 1e307, size=(5, 16))  # differences below 1e307: every sum fits float64
    np.testing.assert_allclose(dw.distance(wide, wide[::-1], "l1").to_numpy(),
                               scaled_reference(wide, wide[::-1], "l1", 1020), rtol=1e-12)


def test_float64_distances_past_the_largest_float_are_refused():
    x = np.array([[1.5e308, -1.5e308]])
    with pytest.raises(FrameError, match=r"values up to 1.5e\+308: some l2 distances .* largest float64 .*common factor"):
        dw.distance(x, -x, "l2")
    with pytest.raises(FrameError, match=r"l1 distances .* largest float64"):
        dw.nearest(x, -x, 1, "l1")


def test_a_matrix_larger_than_memory_is_refused_before_allocating(tmp_path):
    x = np.zeros((10**6, 1), dtype=np.float32)  # 10^6 x 10^6 float32: 4 TB
    with pytest.raises(FrameError, match=r"the 1,000,000 x 1,000,000 distance matrix of X and Y needs "
                                         r"4,000,000,000,000 bytes .*GiB of memory available; .*out='d.npy'.*nearest"):
        dw.distance(x, x, "l2")
    available = available_memory()
    assert available is not None and 0 < available < 4 * 10**12
    assert dw.nearest(x[:3], x[:50], 2).shape == (3, 4)  # nearest never builds the matrix
