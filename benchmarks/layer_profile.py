"""Where an engine's GPU time goes, layer by layer: TensorRT's own profiler on a trtkit build.

    python3 benchmarks/layer_profile.py OUT BATCH,BATCH,...

Needs a GPU, TensorRT 8.6+ and numpy; the folder toolkit/runtime may sit beside this file as trtkit_runtime (as
copied into a TensorRT container). For each batch it prints one JSON line: the engine's GPU time of one run
(CUDA events, no profiler: what a graph replay would not shorten), the number of layers TensorRT runs, and the
median time of each over RUNS profiled runs (the profiler synchronizes after every layer, so the sum is larger
than the plain run; the shares are what to read). The first batch's line also lists the layers as TensorRT's
engine inspector sees them at its shapes, with each tensor's type (names only unless the engine was built with
detailed profiling verbosity, as Polygraphy builds).

Evidence for work on the engine itself (issue 9: at batch 1 and 64 the engine, not the runtime, is the limit).
"""
import contextlib
import json
import os
import statistics
import sys
from collections import defaultdict

import numpy as np
import tensorrt as trt

try:
    from trtkit.runtime import cuda
except ImportError:  # copied beside this file
    from trtkit_runtime import cuda  # type: ignore[no-redef]

RUNS = 50


class LayerTimes(trt.IProfiler):
    def __init__(self):
        trt.IProfiler.__init__(self)
        self.times = defaultdict(list)

    def report_layer_time(self, layer_name, ms):
        self.times[layer_name].append(ms)


def engine_layers(engine, context):
    """The inspector's layers at the context's shapes: without them a dynamic-shape engine's types read "N/A due
    to dynamic shapes" (TensorRT 8.6), and which layers run in which precision is what this line is read for."""
    try:
        inspector = engine.create_engine_inspector()
        inspector.execution_context = context
        return inspector.get_engine_information(trt.LayerInformationFormat.ONELINE)
    except Exception as error:  # the inspector is a convenience; its failure is reported, not fatal
        return "inspector failed: %s" % error


def bind(context, engine, batch, memory):
    """Inputs at this batch (zeros), every tensor on device memory of its size; kept in `memory`."""
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            shape = tuple(engine.get_tensor_profile_shape(name, 0)[2])
            context.set_input_shape(name, (batch,) + shape[1:])
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        shape = tuple(context.get_tensor_shape(name))
        size = max(1, int(np.prod(shape)) * trt.nptype(engine.get_tensor_dtype(name))().itemsize)
        memory.append(cuda.DeviceMemory(size))
        context.set_tensor_address(name, memory[-1].ptr)


def plain_ms(context, stream):
    start, stop = cuda.Event(timing=True), cuda.Event(timing=True)
    times = []
    try:
        for _ in range(RUNS):
            start.record(stream)
            context.execute_async_v3(stream.handle)
            stop.record(stream)
            stop.synchronize()
            times.append(stop.milliseconds_since(start))
    finally:
        start.destroy()
        stop.destroy()
    return statistics.median(times)


@contextlib.contextmanager
def bound(engine, batch):
    """(context, stream) with the inputs at this batch, run once (TensorRT's set-up for the shape, not timed)."""
    context = engine.create_execution_context()
    stream, memory = cuda.Stream(), []
    try:
        bind(context, engine, batch, memory)
        context.execute_async_v3(stream.handle)
        stream.synchronize()
        yield context, stream
    finally:
        del context
        for block in memory:
            block.free()
        stream.destroy()


def profile(engine, batch, list_layers):
    with bound(engine, batch) as (context, stream):
        plain = plain_ms(context, stream)
        layers = LayerTimes()
        context.profiler = layers
        for _ in range(RUNS):
            context.execute_async_v3(stream.handle)
            stream.synchronize()
        medians = {name: statistics.median(times) for name, times in layers.times.items()}
        top = sorted(medians.items(), key=lambda item: -item[1])
        result = {"batch": batch, "plain_run_ms": round(plain, 4), "layers": len(medians),
                  "profiled_sum_ms": round(sum(medians.values()), 4),
                  "by_time": [[name, round(ms, 4)] for name, ms in top]}
        if list_layers:
            result["engine_layers"] = engine_layers(engine, context)
        return result


def main(argv):
    out, batches = argv[0], [int(b) for b in argv[1].split(",")]
    logger = trt.Logger(trt.Logger.WARNING)
    with open(os.path.join(out, "model.plan"), "rb") as plan, cuda.current(0):
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(plan.read())
        print(json.dumps({"tensorrt": trt.__version__}), flush=True)
        for batch in batches:
            print(json.dumps(profile(engine, batch, list_layers=batch == batches[0])), flush=True)
        del engine


if __name__ == "__main__":
    main(sys.argv[1:])
