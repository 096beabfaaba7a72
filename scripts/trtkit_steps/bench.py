"""Benchmark the model in every framework at several batch sizes.

    python3 -m trtkit_steps.bench PLAN.json

Each framework measures each batch in its own process (trtkit_steps.bench_worker): TensorFlow keeps the
memory it takes (a 100000-row predict peaks at several GB), and a worker the
OOM killer ends costs one row, not the bench. The keras-call worker runs first
on a batch and writes that batch's Keras reference to a temporary file the
other workers compare with; the inputs are made here first, with numpy only
(seeded, so every machine makes the same). A reference given in
bench_reference/b<BATCH>.npz is used as it is: that is how an engine is
checked at batch 100000 on a GPU machine that has no TensorFlow.
"""
import functools
import importlib.util
import json
import operator
import os
import platform
import shutil
import sys

import numpy as np

from trtkit_steps import contract
from trtkit_steps.chart import draw_latency_chart
from trtkit_steps.errors import StepError
from trtkit_steps.events import emit, log, run_main, run_relayed, step
from trtkit_steps.samples import concrete_shapes, sample_inputs
from trtkit_steps.storage import read_json, save_arrays
from trtkit_steps.timing import latency_stats

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REFERENCE = "keras-call"  # runs first on each batch: it writes the inputs and the reference
BASELINE = "keras-predict"  # speedups are against its median
END_TO_END = "end-to-end"  # host arrays in, host arrays out
ON_DEVICE = "on-device"  # inputs already on the GPU, outputs left there
PINNED_INPUT = "pinned-input"  # end to end from page-locked host arrays (trtkit.runtime's pinned_empty)
# trtkit.runtime, as an application calls the engine (graphs, pinned streaming), shipped beside these scripts
RUNTIME = "trtkit-runtime"
MODES = {"tensorrt": [ON_DEVICE, END_TO_END], RUNTIME: [END_TO_END, PINNED_INPUT]}
FRAMEWORK_MODULES = {REFERENCE: "tensorflow", BASELINE: "tensorflow", "onnxruntime": "onnxruntime", RUNTIME: "tensorrt",
                     "tensorrt": "tensorrt"}
FRAMEWORK_ARTIFACTS = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", RUNTIME: "model.plan"}
# A batch runs only when its inputs take at most 1/MEMORY_SHARE of the free memory:
# a worker holds the inputs, the framework's copies and the activations (the
# origin LSTM's predict on 100000 rows peaked at 12.4 GB RSS for 0.85 GB of inputs).
MEMORY_SHARE = 16

# --- settings ---------------------------------------------------------------

def bench_settings(bench):
    """The plan's bench settings (contract.bench_settings), as a step error when malformed."""
    try:
        return contract.bench_settings(bench)
    except ValueError as e:
        raise StepError(str(e)) from None


def available_frameworks(work, has_module=lambda name: importlib.util.find_spec(name) is not None):
    """(frameworks to measure, in run order; [{framework, reason}] of those this image lacks).

    The Keras pair always, the others when the build made their artifact. A TensorRT image with
    no TensorFlow (the second stage of a two-stage build) measures what it has.
    """
    found, missing = [], []
    for framework in (REFERENCE, BASELINE, "onnxruntime", "tensorrt", RUNTIME):
        artifact = FRAMEWORK_ARTIFACTS.get(framework)
        if artifact and not os.path.exists(os.path.join(work, contract.ARTIFACTS, artifact)):
            continue
        module = FRAMEWORK_MODULES[framework]
        if has_module(module):
            found.append(framework)
        else:
            missing.append({"framework": framework, "reason": "%s is not in this image" % module})
    return found, missing


def modes_of(framework):
    return MODES.get(framework, [END_TO_END])


def temp_paths(work, batch):
    """The batch's inputs and reference files, shared by its workers."""
    return (os.path.join(work, "bench_b%d_inputs.npz" % batch),
            os.path.join(work, "bench_b%d_reference.npz" % batch))


# --- memory guard -----------------------------------------------------------

def input_bytes(io_inputs, shapes, batch):
    """Bytes of one batch of inputs, from io.json's specs and the plan's --shapes."""
    dims = concrete_shapes(io_inputs, shapes, batch)
    # Python integers: numpy's int64 product overflows on absurd shapes and would pass the guard.
    return sum(functools.reduce(operator.mul, dims[s["name"]], 1) * np.dtype(s["dtype"]).itemsize for s in io_inputs)


CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def mem_available_bytes(meminfo="/proc/meminfo", cgroup_limits=CGROUP_LIMITS):
    """MemAvailable in bytes, capped by the container's memory limit; None where neither is known."""
    known = [_read_number(meminfo, "MemAvailable:")]
    known += [_read_number(path) for path in cgroup_limits]
    known = [value for value in known if value]
    return min(known) if known else None


def _read_number(path, key=None):
    """A number of bytes from /proc/meminfo (by key, in kB) or a cgroup file ('max': no limit)."""
    try:
        with open(path) as f:
            for line in f:
                if key is None:
                    return int(line) if line.strip().isdigit() else None
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (IOError, OSError, ValueError, IndexError):
        return None
    return None


def memory_skip_reason(needed_bytes, available_bytes):
    """Why a batch must be skipped for want of memory, or None (also when memory is unknown)."""
    if available_bytes is None or needed_bytes * MEMORY_SHARE <= available_bytes:
        return None
    return ("its inputs take %.2f GB, more than 1/%d of the %.2f GB of memory available"
            % (needed_bytes / 1e9, MEMORY_SHARE, available_bytes / 1e9))


# --- rows -------------------------------------------------------------------

def timing_row(framework, mode, batch, times_ms, max_abs_err, warmup):
    row = {"framework": framework, "mode": mode, "batch": batch, "max_abs_err": max_abs_err, "warmup": warmup}
    row.update(latency_stats(times_ms, batch))
    return row


def error_row(framework, mode, batch, message):
    return {"framework": framework, "mode": mode, "batch": batch, "error": message}


def fill_speedups(rows):
    """One batch's rows with speedup_vs_predict: None where either median is missing, and for rows measured on
    another device than Keras predict (a GPU's time over a CPU's is no speed-up)."""
    base = next((r for r in rows if r["framework"] == BASELINE and r.get("median_ms")), None)
    return [dict(r, speedup_vs_predict=base["median_ms"] / r["median_ms"]
                 if base and r.get("median_ms") and r.get("device") == base.get("device") else None)
            for r in rows]


def worker_failure(returncode, last_line):
    """One line on why a worker left rows unreported."""
    if returncode < 0:
        return "killed by signal %d" % -returncode
    return "worker exited with code %d%s" % (returncode, ": " + last_line if last_line else "")


def complete_rows(rows, framework, batch, returncode, last_line):
    """The worker's rows plus an error row for each mode it did not report."""
    done = set(r["mode"] for r in rows)
    missing = [m for m in modes_of(framework) if m not in done]
    return rows + [error_row(framework, m, batch, worker_failure(returncode, last_line)) for m in missing]


def cpu_name(cpuinfo="/proc/cpuinfo"):
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except (IOError, OSError):
        pass
    return platform.processor() or platform.machine() or "unknown"


# --- parent: every framework on every batch ---------------------------------

def parse_event(line):
    """The event a line carries, or None for log text."""
    if not line.startswith(contract.EVENT_PREFIX):
        return None
    try:
        return json.loads(line[len(contract.EVENT_PREFIX):])
    except ValueError:
        return None


def spawn_worker(plan_path, framework, batch):
    """Run one framework on one batch in its own process, relaying its output; (rows, each with the device the
    worker named, or "unknown"; the GPU it named, or None)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in [SCRIPTS, os.environ.get("PYTHONPATH")] if p))
    rows, seen = [], {"device": "unknown", "last_line": ""}

    def collect(line):
        event = parse_event(line)
        if event is None:
            seen["last_line"] = line.strip() or seen["last_line"]
        elif event.get("event") == "error":  # a StepError the worker could not turn into rows
            seen["last_line"] = event.get("message") or seen["last_line"]
        elif event.get("event") == "bench_row":
            event.pop("event")
            rows.append(event)
        elif event.get("event") == "bench_device":
            seen["device"] = str(event["device"])

    code = run_relayed([sys.executable, "-m", "trtkit_steps.bench_worker", framework, plan_path, str(batch)],
                       collect, env)
    rows = [dict(row, device=seen["device"]) for row in complete_rows(rows, framework, batch, code, seen["last_line"])]
    return rows, seen["device"] if seen["device"].startswith("gpu: ") else None


def _remove_temp_files(paths):
    for path in paths:
        for leftover in (path, path + ".tmp.npz"):  # save_arrays' partial file, if a worker died saving
            if os.path.exists(leftover):
                os.remove(leftover)


def write_batch_inputs(plan, io_inputs, batch, paths, work):
    """Seeded inputs of this batch (random even when --sample-data was given: its batch is fixed)."""
    save_arrays(paths[0], sample_inputs(io_inputs, dict(plan, sample_batch=batch, sample_data=None)))
    given = os.path.join(work, "bench_reference", "b%d.npz" % batch)
    if os.path.exists(given):
        shutil.copy(given, paths[1])


def bench_batch(plan_path, work, batch, frameworks):
    """Every framework on one batch; (rows with speedups, GPU named by a worker or None)."""
    paths = temp_paths(work, batch)
    _remove_temp_files(paths)  # stale files from a killed run must not pass for this run's
    rows, gpu = [], None
    try:
        io_inputs = read_json(os.path.join(work, contract.IO))["inputs"]
        write_batch_inputs(contract.read_plan(plan_path), io_inputs, batch, paths, work)
        for framework in frameworks:
            found, named = spawn_worker(plan_path, framework, batch)
            rows += found
            gpu = named or gpu
    finally:
        _remove_temp_files(paths)
    return fill_speedups(rows), gpu


def run_bench(plan_path):
    plan_path = os.path.abspath(plan_path)
    work = os.path.dirname(plan_path)
    with step("bench"):
        plan = read_json(plan_path)
        settings = bench_settings(plan["bench"])
        io_path = os.path.join(work, contract.IO)
        if not os.path.exists(io_path):
            raise StepError("%s is missing: the keras stage must run before the bench" % io_path)
        io_inputs = read_json(io_path)["inputs"]
        frameworks, missing = available_frameworks(work)
        for absent in missing:
            log("bench: no %s rows: %s" % (absent["framework"], absent["reason"]))
        rows, skipped, device = [], [], "cpu: %s" % cpu_name()
        for batch in settings["batches"]:
            reason = memory_skip_reason(input_bytes(io_inputs, plan["shapes"], batch), mem_available_bytes())
            if reason:
                log("bench: skipping batch %d: %s" % (batch, reason))
                skipped.append({"batch": batch, "reason": reason})
                continue
            log("bench: batch %d: %s" % (batch, ", ".join(frameworks)))
            batch_rows, gpu = bench_batch(plan_path, work, batch, frameworks)
            rows += batch_rows
            device = gpu or device
        chart = draw_latency_chart(rows, device, os.path.join(work, contract.ARTIFACTS, "bench.png"))
        if chart:
            emit("artifact", name=os.path.basename(chart), kind="chart")
        emit("bench", device=device, rows=rows, skipped=skipped, missing=missing, batches=settings["batches"],
             chart=os.path.basename(chart) if chart else None)


def main(argv):
    run_bench(argv[0])


if __name__ == "__main__":
    run_main(main)
