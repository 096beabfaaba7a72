"""Check trtkit.runtime on a GPU against the reference a trtkit build keeps, and time it.

    python3 benchmarks/runtime_check.py OUT [BATCH,BATCH,...] [--sweep]   (default: 1,64,1024 and the profile's
                                                                         largest)

Needs a GPU, TensorRT 8.6+ and numpy, not the trtkit package: the folder toolkit/runtime may sit beside this
file instead, as trtkit_runtime (as copied into a TensorRT container). For each batch it feeds the build's
reference inputs repeated to that many rows (rows are independent, so the expected outputs are the reference
outputs repeated alike) and prints one JSON line: how predict() ran it (one graph run, or streamed chunks),
the largest error against Keras, the largest difference from the first call of a graph replay, of four
threads at once and of graphs=False, and the median milliseconds of predict() with graphs on and off, and of
its GPU time (time_device: copies in and out included). An engine with float16 inputs (--io-precision fp16) runs
each batch once more from ordinary arrays of its types (engine_types). Each batch runs once more from page-locked
copies in the engine's types (Engine.pinned_copy: straight to the GPU, no staging): its difference from the first
call and its median milliseconds. After
all batches, one more line replays each batch again, now that the lane's execution context has run the other
shapes since (replay_after_other_shapes_vs_first per batch: its graphs must still agree with their first call).
Last, at the largest batch, a line per fill_threads and stream_chunk_bytes setting (--sweep): the evidence for
the defaults.

A failure prints one JSON line {"batch": ..., "error": "..."} (or {"error": ...}) and the check goes on, or
exits 1; a crash inside TensorRT or CUDA at least leaves Python's stack on stderr (faulthandler).
"""
import faulthandler
import json
import os
import statistics
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    from trtkit import runtime
except ImportError:  # the runtime's folder copied beside this one as trtkit_runtime
    import trtkit_runtime as runtime  # type: ignore[no-redef]

TIME_BUDGET_S = 10.0  # of timed calls per batch and setting
SWEEP_BUDGET_S = 3.0
SWEEP_FILL_THREADS = (4, 8, 16)
SWEEP_CHUNK_MB = (16, 32, 64)


def load_arrays(path):
    """A trtkit .npz: arrays a0, a1... with their names in `names` (names may hold '/' and ':')."""
    with np.load(path) as data:
        return {str(name): data["a%d" % i] for i, name in enumerate(data["names"])}


def repeated(arrays, batch):
    return {name: np.take(array, np.arange(batch) % len(array), axis=0) for name, array in arrays.items()}


def largest_difference(got, expected):
    return max(float(np.max(np.abs(got[name].astype(np.float64) - expected[name]))) for name in expected)


def median_ms(call, budget_s=None, engine=None):
    """Median wall milliseconds of call(); with an engine made with time_device, of its GPU time instead."""
    budget_s = TIME_BUDGET_S if budget_s is None else budget_s
    call()
    times, spent = [], 0.0
    while len(times) < 5 or (spent < budget_s and len(times) < 200):
        start = time.perf_counter()
        call()
        wall = (time.perf_counter() - start) * 1000
        spent += wall / 1000
        times.append(wall if engine is None else engine.last_device_ms)
    return round(statistics.median(times), 4)


def how_it_runs(engine, x):
    shapes = {name: array.shape for name, array in x.items()}
    row_bytes = sum(runtime.nbytes(shapes[s.name][1:], s.engine_dtype) for s in engine.inputs)
    plan = runtime.plan_call(engine.profiles, shapes, row_bytes, runtime.SMALL_BATCH_BYTES, runtime.STREAM_CHUNK_BYTES)
    return "one graph run" if plan.small else "%d streamed chunks" % len(plan.chunks)


def in_engine_types(engine, x):
    """x by engine name, in the engine's input types (float16 for --io-precision fp16); None when those are x's."""
    arrays = runtime.map_inputs(x, engine.inputs)
    if all(arrays[spec.name].dtype == spec.engine_dtype for spec in engine.inputs):
        return None
    return {spec.name: arrays[spec.name].astype(spec.engine_dtype) for spec in engine.inputs}


def check_batch(engine, eager, timed, inputs, expected, batch):
    x, want = repeated(inputs, batch), repeated(expected, batch)
    first = engine.predict(x, as_dict=True)
    replayed = engine.predict(x, as_dict=True)
    with ThreadPoolExecutor(4) as threads:
        concurrent = list(threads.map(lambda _: engine.predict(x, as_dict=True), range(8)))
    line = {
        "batch": batch,
        "runs_as": how_it_runs(engine, x),
        "max_abs_err_vs_keras": largest_difference(first, want),
        "replay_vs_first": largest_difference(replayed, first),
        "threads_vs_first": max(largest_difference(result, first) for result in concurrent),
        "graphs_off_vs_first": largest_difference(eager.predict(x, as_dict=True), first),
        "median_ms": median_ms(lambda: engine.predict(x)),
        "median_ms_graphs_off": median_ms(lambda: eager.predict(x)),
        "device_ms": median_ms(lambda: timed.predict(x), engine=timed),
    }
    converted = in_engine_types(engine, x)
    if converted is not None:
        line.update(engine_types_vs_first=largest_difference(engine.predict(converted, as_dict=True), first),
                    median_ms_engine_types=median_ms(lambda: engine.predict(converted)),
                    device_ms_engine_types=median_ms(lambda: timed.predict(converted), engine=timed))
    pinned = engine.pinned_copy(x)
    line.update(pinned_input_vs_first=largest_difference(engine.predict(pinned, as_dict=True), first),
                median_ms_pinned_input=median_ms(lambda: engine.predict(pinned)),
                device_ms_pinned_input=median_ms(lambda: timed.predict(pinned), engine=timed))
    return first, line


def sweep(out, inputs, batch):
    """predict()'s median milliseconds at the largest batch for each fill_threads and stream_chunk_bytes."""
    x = repeated(inputs, batch)
    for threads in SWEEP_FILL_THREADS:
        for chunk_mb in SWEEP_CHUNK_MB:
            with runtime.Engine(out, fill_threads=threads, stream_chunk_bytes=chunk_mb << 20) as engine:
                print(json.dumps({"sweep": {"batch": batch, "fill_threads": threads, "stream_chunk_mb": chunk_mb,
                                            "median_ms": median_ms(lambda: engine.predict(x), SWEEP_BUDGET_S)}}),
                      flush=True)


def error_line(error, **where):
    """One JSON line for a failure, its traceback on stderr."""
    traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    return json.dumps(dict(where, error="%s: %s" % (type(error).__name__, error)))


def main(argv):
    out = argv[0]
    inputs = load_arrays(os.path.join(out, "reference-inputs.npz"))
    expected = load_arrays(os.path.join(out, "reference-outputs.npz"))
    failed = False
    with runtime.Engine(out) as engine, runtime.Engine(out, graphs=False) as eager, \
            runtime.Engine(out, time_device=True) as timed:
        largest = min(r.max[0] for r in engine.profiles[0].values())
        given = [arg for arg in argv[1:] if not arg.startswith("--")]
        batches = [int(b) for b in given[0].split(",")] if given else sorted({1, 64, 1024, largest})
        print(json.dumps({"host": vars(engine.host), "built": vars(engine.built) if engine.built else None,
                          "profiles": len(engine.profiles)}), flush=True)
        firsts = {}
        for batch in batches:
            try:
                firsts[batch], line = check_batch(engine, eager, timed, inputs, expected, batch)
                print(json.dumps(line), flush=True)
            except Exception as e:  # one line, then the next batch
                failed = True
                print(error_line(e, batch=batch), flush=True)
        try:
            again = {str(batch): largest_difference(engine.predict(repeated(inputs, batch), as_dict=True), first)
                     for batch, first in firsts.items()}
            print(json.dumps({"replay_after_other_shapes_vs_first": again}), flush=True)
        except Exception as e:
            failed = True
            print(error_line(e, check="replay_after_other_shapes"), flush=True)
    if "--sweep" in argv:
        try:
            sweep(out, inputs, max(batches))
        except Exception as e:
            failed = True
            print(error_line(e, check="sweep"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    faulthandler.enable()
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as error:  # loading, or closing: a line, not a bare traceback
        print(error_line(error), flush=True)
        sys.exit(1)
