"""predict() of several trtkit builds side by side, in one process, in turns: an A/B without a run between.

    python3 benchmarks/predict_ab.py BATCH,BATCH,... OUT OUT ...

Needs a GPU, TensorRT 8.6+ and numpy; the folder toolkit/runtime may sit beside this file
as trtkit_runtime.
Zeros of each input's shape (batch first, the other dimensions of the profile's OPT shape) go in. For each of
ROUNDS rounds, each build and each batch, one JSON line: the median wall microseconds of CALLS predict() calls
after WARMUP, and of the CUDA graph launch inside them (a graph of many nodes costs the host more to launch).
Rounds alternate the builds, so a drift of the machine shows as a difference between rounds, not builds.
"""
import json
import statistics
import sys
import time

import numpy as np

try:
    from trtkit import runtime
    from trtkit.runtime import cuda
except ImportError:  # the runtime's folder copied beside this one as trtkit_runtime
    import trtkit_runtime as runtime  # type: ignore[no-redef]
    from trtkit_runtime import cuda  # type: ignore[no-redef]

ROUNDS, WARMUP, CALLS = 3, 50, 1000
launches = []
_launch = cuda.GraphExec.launch


def timed_launch(graph, stream):
    start = time.perf_counter()
    _launch(graph, stream)
    launches.append((time.perf_counter() - start) * 1e6)


def inputs(engine, batch):
    return [np.zeros((batch,) + tuple(engine.profiles[0][spec.name].opt[1:]), spec.dtype) for spec in engine.inputs]


def median_call_us(engine, x):
    for _ in range(WARMUP):
        engine.predict(x)
    del launches[:]
    calls = []
    for _ in range(CALLS):
        start = time.perf_counter()
        engine.predict(x)
        calls.append((time.perf_counter() - start) * 1e6)
    return round(statistics.median(calls), 1), round(statistics.median(launches), 1) if launches else None


def main(argv):
    batches, outs = [int(b) for b in argv[0].split(",")], argv[1:]
    cuda.GraphExec.launch = timed_launch
    engines = [runtime.Engine(out) for out in outs]
    try:
        for round_ in range(ROUNDS):
            for out, engine in zip(outs, engines):
                for batch in batches:
                    call_us, launch_us = median_call_us(engine, inputs(engine, batch))
                    print(json.dumps({"round": round_, "build": out, "batch": batch, "call_us": call_us,
                                      "graph_launch_us": launch_us}), flush=True)
    finally:
        for engine in engines:
            engine.close()


if __name__ == "__main__":
    main(sys.argv[1:])
