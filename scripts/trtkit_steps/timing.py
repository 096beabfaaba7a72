"""Latencies of a call, and their statistics, for the bench."""
import time

import numpy as np


def timed(fn, warmup, iterations, sync=None):
    """Latencies in milliseconds of fn() after warmup calls; sync() ends GPU work."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def latency_stats(times_ms, batch):
    t = np.sort(np.asarray(times_ms))
    median = float(np.median(t))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(t, 90)),
        "p99_ms": float(np.percentile(t, 99)),
        "throughput_per_s": batch / (median / 1000.0) if median > 0 else None,
        "iterations": len(times_ms),
    }
