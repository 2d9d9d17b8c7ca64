"""Measure the vectorised capability + state-of-energy check: 10^6 DERs x 288 five-minute intervals, float32.

Not a test (pytest does not collect it). Run from the repository root:

    python tests/unit/engines/conflicts/bench_conflict_kernels.py [n_der] [n_intervals]

It prints the median of three runs for the fused numba pass (all threads, then one thread) and for the
chunked numpy pass, and checks that both give identical counts. Needs about 1.5 GB of memory at 10^6 x 288.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

from gridbridge.engines.conflicts import ScreenResult, screen_capability_energy


def _median_s(run: Callable[[], ScreenResult], repeats: int = 3) -> tuple[float, ScreenResult]:
    times = []
    result = run()
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(n_der: int = 1_000_000, n_intervals: int = 288) -> None:
    """Build a synthetic fleet and time the three variants of the check."""
    rng = np.random.default_rng(2026)
    start = time.perf_counter()
    p = rng.standard_normal((n_der, n_intervals), dtype=np.float32)
    p *= np.float32(15.0)
    p_export = rng.uniform(50.0, 150.0, n_der)
    p_import = rng.uniform(50.0, 150.0, n_der)
    storage = rng.random(n_der) < 0.6
    e_kwh = rng.uniform(50.0, 600.0, n_der)
    e0 = 0.5 * e_kwh
    args = (p, p_export, p_import, storage, e0, 0.1 * e_kwh, 0.95 * e_kwh, np.full(n_der, 0.95), np.full(n_der, 0.95))
    dt_h = 5.0 / 60.0
    print(
        f"inputs: {n_der} DERs x {n_intervals} intervals, float32 {p.nbytes / 1e9:.2f} GB, "
        f"built in {time.perf_counter() - start:.1f} s"
    )

    t_numba, fused = _median_s(lambda: screen_capability_energy(*args, dt_h, engine="numba"))
    print(f"numba fused, {numba.get_num_threads()} threads: {t_numba:.3f} s")
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    t_numba1, _ = _median_s(lambda: screen_capability_energy(*args, dt_h, engine="numba"))
    numba.set_num_threads(threads)
    print(f"numba fused, 1 thread: {t_numba1:.3f} s")
    t_numpy, chunked = _median_s(lambda: screen_capability_energy(*args, dt_h, engine="numpy"))
    print(f"numpy chunked (8192 DERs per chunk): {t_numpy:.3f} s")
    same = np.array_equal(fused.capability_intervals, chunked.capability_intervals) and np.array_equal(
        fused.energy_intervals, chunked.energy_intervals
    )
    print(
        f"identical counts: {same}; DERs flagged: {int(fused.flagged.sum())} "
        f"(capability {int((fused.capability_intervals > 0).sum())}, energy {int((fused.energy_intervals > 0).sum())})"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
