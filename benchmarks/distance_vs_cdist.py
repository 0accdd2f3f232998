"""deepwater.distance vs scipy's cdist vs a naive numpy broadcast, for every measure, side by side.

20,000 x 2,000 rows of 1,024 float32 features (N(0.5, 1), seed 0) by default. Each contender runs
once per measure in its own subprocess, so its peak memory is the growth of that process's peak
resident set during the call (VmHWM after the call minus VmRSS before it, the peak reset through
/proc/self/clear_refs; ru_maxrss where /proc is missing), inputs already loaded; results, the
N x M float64 matrix included, count. The naive broadcast, x[:, None, :] - y[None, :, :], would need N*M*d*4 bytes
(164 GB at the default size), so it runs on the first --naive-rows rows of X only and its time is
reported scaled by N / naive-rows (its memory is the slice's, as measured). The max relative
difference is max |ours - cdist| / |cdist| over all entries, against cdist in float64 (cosine:
1 - cdist 'cosine'; cosine_sq: its square).

Run: `python benchmarks/distance_vs_cdist.py [--rows 20000] [--cols 2000] [--features 1024]
[--naive-rows 200]`. Writes benchmarks/results/distance_vs_cdist.json.
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
CONTENDERS = ("deepwater", "cdist", "naive")


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
    import deepwater as dw

    x = np.load(os.path.join(folder, "x.npy"))
    y = np.load(os.path.join(folder, "y.npy"))
    if contender == "naive":
        x = x[:naive_rows]
    run = {"deepwater": lambda: dw.distance(x, y, measure).to_numpy(),
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

def max_relative_difference(path: str, reference_path: str, rows: int | None = None) -> float:
    """max |a - b| / |b| over the matrices in two .npy files (the first `rows` rows of the reference)."""
    a = np.load(path, mmap_mode="r")
    b = np.load(reference_path, mmap_mode="r")
    worst = 0.0
    for start in range(0, len(a), 1000):
        ours = np.asarray(a[start:start + 1000], dtype=np.float64)
        ref = np.asarray(b[start:start + len(ours)])
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(ref != 0, np.abs(ours - ref) / np.abs(ref), np.abs(ours - ref))
        worst = max(worst, float(np.nanmax(relative)))
    return worst


def run_contender(contender: str, measure: str, folder: str, naive_rows: int) -> dict:
    command = [sys.executable, __file__, "--worker", contender, "--measure", measure, "--data", folder,
               "--naive-rows", str(naive_rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--cols", type=int, default=2_000)
    parser.add_argument("--features", type=int, default=1_024)
    parser.add_argument("--naive-rows", type=int, default=200)
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
            timings = {c: run_contender(c, measure, folder, naive_rows) for c in CONTENDERS}
            reference = os.path.join(folder, f"{measure}-cdist.npy")
            for contender in CONTENDERS:
                entry = timings[contender]
                seconds = entry["seconds"] * (n / naive_rows if contender == "naive" else 1.0)
                rows.append({
                    "measure": measure, "contender": contender, "seconds": round(seconds, 3),
                    "speedup_vs_cdist": round(timings["cdist"]["seconds"] / seconds, 2),
                    "peak_extra_mb": round(entry["peak_extra_mb"], 1),
                    "max_rel_diff_vs_cdist": max_relative_difference(
                        os.path.join(folder, f"{measure}-{contender}.npy"), reference),
                    "note": (f"measured on {naive_rows} rows of X ({entry['seconds']:.2f} s, memory as measured), "
                             f"time scaled x{n / naive_rows:g}") if contender == "naive" else "",
                })
            for contender in CONTENDERS:
                os.remove(os.path.join(folder, f"{measure}-{contender}.npy"))
            print_table([r for r in rows if r["measure"] == measure], header=measure == MEASURES[0])

    result = {"shape": {"X": [n, d], "Y": [m, d], "dtype": "float32", "naive_rows": naive_rows},
              "naive_full_bytes": n * m * d * 4, "cpu_count": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "rows": rows}
    print(f"written to {write_result('distance_vs_cdist', result)}")


def print_table(rows: list[dict], header: bool) -> None:
    if header:
        print(f"{'measure':<10} {'contender':<10} {'seconds':>9} {'x cdist':>8} {'peak MB':>9} {'max rel diff':>13}  note")
    for r in rows:
        print(f"{r['measure']:<10} {r['contender']:<10} {r['seconds']:>9.2f} {r['speedup_vs_cdist']:>8.2f} "
              f"{r['peak_extra_mb']:>9.1f} {r['max_rel_diff_vs_cdist']:>13.2e}  {r['note']}", flush=True)


if __name__ == "__main__":
    main()
