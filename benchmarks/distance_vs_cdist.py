"""deepwater.distance vs the plain float32 product form, scipy's cdist and a naive broadcast, side by side.

20,000 x 2,000 rows of 1,024 float32 features (N(0.5, 1), seed 0) by default. Contenders, per measure:
deepwater (the default: the inputs' precision, float32 here), deepwater_float64 (dtype='float64'), plain
(the formula as float32 matrix products, written by hand: the speed a float32 distance can reach; l2 and
the cosines only), cdist (scipy, float64), naive (broadcast differences), and for l1, which has no
product form, deepwater_numpy (deepwater's numpy kernel, as where numba is not installed) and
torch_cdist (torch.cdist(p=1), the other vectorised kernel considered). Each contender runs
once per measure in its own subprocess, so its peak memory is the growth of that process's peak
resident set during the call (VmHWM after the call minus VmRSS before it, the peak reset through
/proc/self/clear_refs; ru_maxrss where /proc is missing), inputs already loaded; results, the
N x M float64 matrix included, count. The naive broadcast, x[:, None, :] - y[None, :, :], would need N*M*d*4 bytes
(164 GB at the default size), so it runs on the first --naive-rows rows of X only and its time is
reported scaled by N / naive-rows (its memory is the slice's, as measured). The max relative
difference is max |ours - cdist| / |cdist| over all entries, against cdist in float64 (cosine:
1 - cdist 'cosine'; cosine_sq: its square).

Run: `python benchmarks/distance_vs_cdist.py [--rows 20000] [--cols 2000] [--features 1024]
[--naive-rows 200] [--repeats 3]`. Times are medians of alternating repeats (the slow alternatives in
ONCE run once). `x plain` in the table is seconds / the plain product form's seconds. Writes benchmarks/results/distance_vs_cdist.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

MEASURES = ("l1", "l2", "cosine", "cosine_sq")
PRODUCT_CONTENDERS = ("deepwater", "deepwater_float64", "plain", "cdist", "naive")
L1_CONTENDERS = ("deepwater", "deepwater_float64", "deepwater_numpy", "torch_cdist", "cdist", "naive")
CONTENDERS = tuple(dict.fromkeys(PRODUCT_CONTENDERS + L1_CONTENDERS))
ONCE = ("naive", "deepwater_numpy", "torch_cdist")  # slow alternatives, run once; the others --repeats times


def contenders(measure: str) -> tuple[str, ...]:
    """Who runs for `measure`: l1 has no product form, but two other kernels."""
    return L1_CONTENDERS if measure == "l1" else PRODUCT_CONTENDERS


# --------------------------------------------------------------------------- one contender, in a subprocess

def cdist_measure(x: np.ndarray, y: np.ndarray, measure: str) -> np.ndarray:
    """The booklet's measures through scipy's cdist (which computes in float64)."""
    from scipy.spatial.distance import cdist

    if measure == "l1":
        return cdist(x, y, "cityblock")
    if measure == "l2":
        return cdist(x, y, "euclidean")
    cosine = cdist(x, y, "cosine")
    np.subtract(1.0, cosine, out=cosine)
    return np.square(cosine, out=cosine) if measure == "cosine_sq" else cosine


def plain_measure(x: np.ndarray, y: np.ndarray, measure: str) -> np.ndarray:
    """The formula as float32 matrix products and in-place passes, nothing else: the reference speed."""
    product = x @ y.T
    if measure == "l2":
        product *= -2.0
        product += np.einsum("ij,ij->i", x, x)[:, None]
        product += np.einsum("ij,ij->i", y, y)[None, :]
        np.maximum(product, 0.0, out=product)
        return np.sqrt(product, out=product)
    product /= np.linalg.norm(x, axis=1)[:, None]
    product /= np.linalg.norm(y, axis=1)[None, :]
    return np.square(product, out=product) if measure == "cosine_sq" else product


def torch_cdist_measure(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """l1 through torch.cdist(p=1) on the CPU, at torch's default threads."""
    import torch

    return torch.cdist(torch.from_numpy(x), torch.from_numpy(y), p=1).numpy()


def naive_measure(x: np.ndarray, y: np.ndarray, measure: str) -> np.ndarray:
    """The formulas written straight as numpy broadcasts over (rows of x, rows of y, features)."""
    if measure == "l1":
        return np.abs(x[:, None, :] - y[None, :, :]).sum(axis=2)
    if measure == "l2":
        return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=2))
    dots = (x[:, None, :] * y[None, :, :]).sum(axis=2)
    cosine = dots / (np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(y, axis=1)[None, :])
    return cosine ** 2 if measure == "cosine_sq" else cosine


def worker(contender: str, measure: str, folder: str, naive_rows: int) -> None:
    """Time one contender on the saved inputs; print seconds and peak memory growth as JSON."""
    if contender == "deepwater_numpy":
        sys.modules["numba"] = None  # type: ignore[assignment]  # as where numba is not installed
    import deepwater as dw

    x = np.load(os.path.join(folder, "x.npy"))
    y = np.load(os.path.join(folder, "y.npy"))
    if contender == "naive":
        x = x[:naive_rows]
    if measure == "l1" and contender.startswith("deepwater"):
        dw.distance(x[:2], y[:2], "l1")  # numba compiles (or loads its cache) outside the timing
    run = {"deepwater": lambda: dw.distance(x, y, measure).to_numpy(),
           "deepwater_float64": lambda: dw.distance(x, y, measure, dtype="float64").to_numpy(),
           "deepwater_numpy": lambda: dw.distance(x, y, measure).to_numpy(),
           "plain": lambda: plain_measure(x, y, measure),
           "torch_cdist": lambda: torch_cdist_measure(x, y),
           "cdist": lambda: cdist_measure(x, y, measure),
           "naive": lambda: naive_measure(x, y, measure)}[contender]
    before = start_peak_tracking()
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    peak = peak_kb()
    np.save(os.path.join(folder, f"{measure}-{contender}.npy"), result)
    print(json.dumps({"seconds": seconds, "peak_extra_mb": (peak - before) / 1024.0}))


def start_peak_tracking() -> int:
    """Reset the peak resident set to the current one (Linux) and return it, in KiB.

    Where /proc is missing, ru_maxrss (KiB on Linux); note that a child process's ru_maxrss starts
    at its parent's resident set, which is why the peak is reset here when possible.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # peak RSS := current RSS
        return _status_kb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_kb() -> int:
    """The peak resident set since start_peak_tracking(), in KiB."""
    try:
        return _status_kb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} is not in /proc/self/status")


# --------------------------------------------------------------------------- the parent: data, runs, table

def max_differences(path: str, reference_path: str) -> tuple[float, float]:
    """max |a - b| / |b| and max |a - b| over the matrices in two .npy files (the first rows of the reference;
    the absolute one is the fair figure for cosines near 0)."""
    a = np.load(path, mmap_mode="r")
    b = np.load(reference_path, mmap_mode="r")
    worst = worst_absolute = 0.0
    for start in range(0, len(a), 1000):
        ours = np.asarray(a[start:start + 1000], dtype=np.float64)
        ref = np.asarray(b[start:start + len(ours)])
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(ref != 0, np.abs(ours - ref) / np.abs(ref), np.abs(ours - ref))
        worst = max(worst, float(np.nanmax(relative)))
        worst_absolute = max(worst_absolute, float(np.nanmax(np.abs(ours - ref))))
    return worst, worst_absolute


def run_contender(contender: str, measure: str, folder: str, naive_rows: int) -> dict:
    command = [sys.executable, __file__, "--worker", contender, "--measure", measure, "--data", folder,
               "--naive-rows", str(naive_rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def repeated(measure: str, folder: str, naive_rows: int, repeats: int) -> dict[str, dict]:
    """Each contender of `measure`, the fast ones `repeats` times in alternation (A B C A B C ...), so that the
    load of a shared machine hits them alike: the median seconds, the largest peak memory, every run's time."""
    runs: dict[str, list[dict]] = {c: [] for c in contenders(measure)}
    for repeat in range(repeats):
        for contender in contenders(measure):
            if repeat == 0 or contender not in ONCE:
                runs[contender].append(run_contender(contender, measure, folder, naive_rows))
    return {c: {"seconds": float(np.median([r["seconds"] for r in entries])),
                "peak_extra_mb": max(r["peak_extra_mb"] for r in entries),
                "runs": [round(r["seconds"], 3) for r in entries]} for c, entries in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--cols", type=int, default=2_000)
    parser.add_argument("--features", type=int, default=1_024)
    parser.add_argument("--naive-rows", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating runs of deepwater, the plain form and cdist; the median counts")
    parser.add_argument("--worker", choices=CONTENDERS)
    parser.add_argument("--measure", choices=MEASURES)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.measure, args.data, args.naive_rows)
        return

    from common import write_result

    n, m, d, naive_rows = args.rows, args.cols, args.features, min(args.naive_rows, args.rows)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="distance_bench_") as folder:
        rng = np.random.default_rng(0)
        np.save(os.path.join(folder, "x.npy"), rng.normal(0.5, 1.0, size=(n, d)).astype(np.float32))
        np.save(os.path.join(folder, "y.npy"), rng.normal(0.5, 1.0, size=(m, d)).astype(np.float32))
        for measure in MEASURES:
            timings = repeated(measure, folder, naive_rows, args.repeats)
            reference = os.path.join(folder, f"{measure}-cdist.npy")
            plain = timings["plain"]["seconds"] if "plain" in timings else None
            for contender in contenders(measure):
                entry = timings[contender]
                relative, absolute = max_differences(os.path.join(folder, f"{measure}-{contender}.npy"), reference)
                seconds = entry["seconds"] * (n / naive_rows if contender == "naive" else 1.0)
                rows.append({
                    "measure": measure, "contender": contender, "seconds": round(seconds, 3),
                    "speedup_vs_cdist": round(timings["cdist"]["seconds"] / seconds, 2),
                    "ratio_to_plain": None if plain is None else round(seconds / plain, 2),
                    "runs_seconds": entry["runs"], "peak_extra_mb": round(entry["peak_extra_mb"], 1),
                    "max_rel_diff_vs_cdist": relative, "max_abs_diff_vs_cdist": absolute,
                    "note": (f"measured on {naive_rows} rows of X ({entry['seconds']:.2f} s, memory as measured), "
                             f"time scaled x{n / naive_rows:g}") if contender == "naive" else "",
                })
            for contender in contenders(measure):
                os.remove(os.path.join(folder, f"{measure}-{contender}.npy"))
            print_table([r for r in rows if r["measure"] == measure], header=measure == MEASURES[0])

    result = {"shape": {"X": [n, d], "Y": [m, d], "dtype": "float32", "naive_rows": naive_rows},
              "naive_full_bytes": n * m * d * 4, "cpu_count": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "rows": rows}
    print(f"written to {write_result('distance_vs_cdist', result)}")


def print_table(rows: list[dict], header: bool) -> None:
    if header:
        print(f"{'measure':<10} {'contender':<18} {'seconds':>9} {'x cdist':>8} {'x plain':>8} {'peak MB':>9} "
              f"{'max rel diff':>13} {'max abs diff':>13}  note")
    for r in rows:
        plain = "" if r["ratio_to_plain"] is None else f"{r['ratio_to_plain']:.2f}"
        print(f"{r['measure']:<10} {r['contender']:<18} {r['seconds']:>9.2f} {r['speedup_vs_cdist']:>8.2f} {plain:>8} "
              f"{r['peak_extra_mb']:>9.1f} {r['max_rel_diff_vs_cdist']:>13.2e} {r['max_abs_diff_vs_cdist']:>13.2e}  {r['note']}", flush=True)


if __name__ == "__main__":
    main()
