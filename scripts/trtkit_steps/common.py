"""Shared plumbing of the in-container steps: events, errors, arrays, timing."""
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from trtkit_steps import contract


class StepError(Exception):
    """A failure the user can act on: shown as one line, no traceback."""

    exit_code = contract.EXIT_STEP_FAILED

    def __init__(self, message, details=None):
        Exception.__init__(self, message)
        self.details = details or {}


class InvalidModel(StepError):
    exit_code = contract.EXIT_INVALID_MODEL


class UntrustedModel(StepError):
    """Loading the model would run code it carries, and --trust-model was not given."""
    exit_code = contract.EXIT_UNTRUSTED_MODEL


class VerificationFailed(StepError):
    exit_code = contract.EXIT_VERIFY_FAILED


class Unsupported(StepError):
    exit_code = contract.EXIT_UNSUPPORTED


def emit(event, **fields):
    """Send one event to the host."""
    fields["event"] = event
    sys.stdout.write(contract.EVENT_PREFIX + json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def run_relayed(args, on_line, env=None):
    """Run a command, echoing each line of its output (stderr included) as it comes; its exit code."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, universal_newlines=True)
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        on_line(line)
    return proc.wait()


def log(message):
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class step(object):
    """Context manager that times a named step and reports start and end."""

    def __init__(self, name):
        self.name = name
        self.seconds = None

    def __enter__(self):
        emit("step_start", step=self.name)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.seconds = time.perf_counter() - self._t0
        emit("step_end", step=self.name, seconds=round(self.seconds, 3), ok=exc_type is None)
        return False


def first_line(error):
    """An error's first line; a StepError is already worded for the user, others say their type.
    Never fails, even on an empty message."""
    lines = [text.strip() for text in str(error).splitlines() if text.strip()]
    if isinstance(error, StepError) and lines:
        return lines[0][:300]
    return ("%s: %s" % (type(error).__name__, lines[0]) if lines else type(error).__name__)[:300]


def run_main(main):
    """Run a step's main(); turn StepError into an error event and exit code."""
    try:
        main(sys.argv[1:])
    except StepError as e:
        emit("error", kind=type(e).__name__, message=str(e), details=e.details)
        sys.exit(e.exit_code)



def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_atomic(path, data):
    """Write bytes through a per-process temporary file: a killed step, or a second one
    writing the same cache file, never leaves half a file."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path, data):
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def nonempty(path):
    return os.path.isfile(path) and os.path.getsize(path) > 0


def save_arrays(path, arrays):
    """Save a name -> array dict; names may hold '/' and ':', so keep an index."""
    names = sorted(arrays)
    payload = {"a%d" % i: np.asarray(arrays[n]) for i, n in enumerate(names)}
    payload["names"] = np.array(names)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **payload)
    os.replace(tmp, path)


def load_arrays(path):
    with np.load(path) as data:
        return by_recorded_name({k: data[k] for k in data.files})


def by_recorded_name(arrays):
    """The arrays of an .npz save_arrays wrote (the names in 'names', the arrays as a0, a1, ...) by those names;
    those of any other .npz by its keys."""
    names = arrays.get("names")
    if names is None or names.dtype.kind != "U" or \
            set(arrays) != set(["names"] + ["a%d" % i for i in range(len(names))]):
        return arrays
    return dict((str(name), arrays["a%d" % i]) for i, name in enumerate(names))


def reference_paths(work):
    """The sample inputs and the source model's outputs on them: artifacts, so later builds reuse them."""
    artifacts = os.path.join(work, contract.ARTIFACTS)
    return os.path.join(artifacts, contract.REFERENCE_INPUTS), os.path.join(artifacts, contract.REFERENCE_OUTPUTS)


def load_reference(work):
    """(inputs, expected outputs) of the reference every artifact is verified against."""
    inputs_path, outputs_path = reference_paths(work)
    return load_arrays(inputs_path), load_arrays(outputs_path)


def compare(expected, actual):
    """Largest absolute and relative error of actual against expected, per output."""
    report = {}
    for name, ref in expected.items():
        if name not in actual:
            raise StepError("output %r is missing from the artifact's outputs %s" % (name, sorted(actual)))
        got = np.asarray(actual[name], dtype=np.float64).reshape(np.shape(ref))
        ref = np.asarray(ref, dtype=np.float64)
        with np.errstate(invalid="ignore"):   # infinities: inf - inf and inf / inf are NaN
            diff = np.where(got == ref, 0.0, np.abs(got - ref))   # the same infinity is no error
            report[name] = {
                "max_abs_err": float(diff.max()) if diff.size else 0.0,
                "max_rel_err": float((diff / np.maximum(np.abs(ref), 1e-12)).max()) if diff.size else 0.0,
            }
    return report


# Exported graphs (ONNX, frozen GraphDef) compute what Keras computes, in FP32.
EXPORT_ATOL = 1e-5


def tolerance(plan, default):
    """--atol when given, else the artifact kind's default."""
    return plan["atol"] if plan["atol"] is not None else default


def worst_error(errors):
    """The largest max_abs_err of {output: errors}, 0.0 for none; NaN when any output's is NaN (max() would pass
    over it where it is not first)."""
    values = [e["max_abs_err"] for e in errors.values()]
    return float("nan") if any(math.isnan(v) for v in values) else max(values, default=0.0)


def gate(artifact, errors, atol, evidence_dir=None, inputs=None, expected=None, actual=None, passed=None):
    """Record errors; fail when any output misses atol (atol None = report only).

    passed: a verdict already reached by the comparison (Polygraphy's), else worst <= atol decides.
    """
    worst = worst_error(errors)
    if passed is None:
        passed = atol is None or worst <= atol
    result = {"artifact": artifact, "outputs": errors, "max_abs_err": worst, "atol": atol, "passed": passed}
    emit("verified", **result)
    if not passed:
        if evidence_dir is not None:
            if not os.path.isdir(evidence_dir):
                os.makedirs(evidence_dir)
            save_arrays(os.path.join(evidence_dir, "inputs.npz"), inputs)
            save_arrays(os.path.join(evidence_dir, "expected.npz"), expected)
            save_arrays(os.path.join(evidence_dir, "actual.npz"), actual)
        raise VerificationFailed(
            "%s differs from Keras by %.3g, above the tolerance %.3g" % (artifact, worst, atol),
            details=result)
    return result


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
