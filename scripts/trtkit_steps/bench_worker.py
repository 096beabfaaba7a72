"""One framework on one batch of the bench, in a process of its own (trtkit_steps.bench runs it per batch):

    python3 -m trtkit_steps.bench_worker FRAMEWORK PLAN.json BATCH

It emits a bench_row per mode of the framework, and the device it ran on (bench_device); a failure is that
framework's error row, never a traceback.
"""
import os
import time

from trtkit_steps import contract
from trtkit_steps.bench import (
    BASELINE,
    END_TO_END,
    ON_DEVICE,
    PINNED_INPUT,
    REFERENCE,
    RUNTIME,
    bench_settings,
    cpu_name,
    error_row,
    modes_of,
    temp_paths,
    timing_row,
)
from trtkit_steps.comparison import compare, worst_error
from trtkit_steps.errors import StepError, first_line
from trtkit_steps.events import emit, run_main
from trtkit_steps.storage import load_arrays, read_json, save_arrays
from trtkit_steps.timing import timed

TIME_BUDGET_S = 60.0  # of warmup and timed calls, per framework and batch


def fit_budget(first_call_s, warmup, iterations, budget_s=TIME_BUDGET_S):
    """(further warmup calls, timed iterations) that fit about budget_s, judged by the first call.

    Timed iterations come first (at least one); the first call has already
    warmed up, so further warmup only takes the time left.
    """
    fits = int(budget_s / first_call_s) if first_call_s > 0 else warmup + iterations
    timed_calls = max(1, min(iterations, fits))
    return max(0, min(warmup - 1, fits - timed_calls)), timed_calls


def _outputs_by_name(model, y):
    from trtkit_steps.keras_stage import flat_outputs
    return dict(zip([o["name"] for o in model.outputs], flat_outputs(y)))


def _keras_device():
    """Where TensorFlow runs Keras: its first GPU, else this CPU."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU") if hasattr(tf.config, "list_physical_devices") else []
    if not gpus:
        return "cpu: %s" % cpu_name()
    details = tf.config.experimental.get_device_details(gpus[0]) \
        if hasattr(tf.config.experimental, "get_device_details") else {}
    return "gpu: %s" % details.get("device_name", gpus[0].name)


def _keras_targets(framework, plan, batch, inputs_path):
    from trtkit_steps.keras_stage import load_model, reference_outputs
    model = load_model(plan)
    emit("bench_device", device=_keras_device())
    inputs = load_arrays(inputs_path)
    if framework == REFERENCE:
        return [(END_TO_END, lambda: reference_outputs(model, inputs), None)]
    predict = getattr(model.owner, "predict", None)
    if predict is None:
        raise StepError("a SavedModel has no Keras predict()")
    xs = [inputs[s["name"]] for s in model.inputs]
    x = xs[0] if len(xs) == 1 else xs
    return [(END_TO_END, lambda: _outputs_by_name(model, predict(x, batch_size=batch, verbose=0)), None)]


def _ort_targets(work, inputs):
    from trtkit_steps.onnx_stage import ort_session, run_session
    session = ort_session(os.path.join(work, contract.ARTIFACTS, "model.onnx"))
    emit("bench_device", device="cpu: %s" % cpu_name())  # ort_session asks for the CPU provider
    return [(END_TO_END, lambda: run_session(session, inputs), None)]


def _tensorrt_targets(work, inputs):
    from trtkit_steps.trt.runner import EngineRunner
    runner = EngineRunner(os.path.join(work, contract.ARTIFACTS, "model.plan"))
    emit("bench_device", device="gpu: %s" % (runner.device_name or "unnamed"))
    runner.load_inputs(inputs)
    return [(ON_DEVICE, runner.infer, lambda _: runner.outputs()),
            (END_TO_END, lambda: runner.infer_host(inputs), None)]


def _runtime_targets(work, inputs):
    """Engine.predict, numpy in and out: from the bench's arrays, and from page-locked copies of them in the
    engine's types (which the GPU copies from where they are). trtkit checks the engine against this host
    elsewhere (check=False)."""
    from trtkit_runtime import Engine
    engine = Engine(os.path.join(work, contract.ARTIFACTS, "model.plan"), check=False)
    emit("bench_device", device="gpu: %s" % engine.host.gpu)
    pinned = engine.pinned_copy(inputs)
    return [(END_TO_END, lambda: engine.predict(inputs, as_dict=True), None),
            (PINNED_INPUT, lambda: engine.predict(pinned, as_dict=True), None)]


def _targets(framework, plan, work, batch, inputs_path):
    """[(mode, call, fetch)]: call() runs the model once; fetch(call's result) gives outputs by name."""
    if framework in (REFERENCE, BASELINE):
        return _keras_targets(framework, plan, batch, inputs_path)
    if framework == "onnxruntime":
        return _ort_targets(work, load_arrays(inputs_path))
    if framework == "tensorrt":
        return _tensorrt_targets(work, load_arrays(inputs_path))
    if framework == RUNTIME:
        return _runtime_targets(work, load_arrays(inputs_path))
    raise StepError("unknown bench framework %r" % framework)


def _reference_check(framework, reference_path):
    """outputs -> max_abs_err (None without a reference); keras-call's outputs become the reference."""
    if not os.path.exists(reference_path):
        if framework != REFERENCE:
            return lambda outputs: None

        def write(outputs):
            save_arrays(reference_path, outputs)
            return 0.0
        return write
    expected = load_arrays(reference_path)
    return lambda outputs: worst_error(compare(expected, outputs))


def measure(call, fetch, check, warmup, iterations):
    """(latencies in ms, max_abs_err, warmup calls made); the first call sizes the loop."""
    t0 = time.perf_counter()
    result = call()
    first_call_s = time.perf_counter() - t0
    max_abs_err = check(fetch(result) if fetch else result)
    del result  # a big batch's outputs need not stay alive through the loop
    more_warmup, iterations = fit_budget(first_call_s, warmup, iterations)
    return timed(call, more_warmup, iterations), max_abs_err, 1 + more_warmup


def run_worker(framework, plan_path, batch):
    """Emit one bench_row per mode; failures become error rows, never a traceback."""
    plan = read_json(plan_path)
    work = os.path.dirname(os.path.abspath(plan_path))
    settings = bench_settings(plan["bench"])
    inputs_path, reference_path = temp_paths(work, batch)
    try:
        targets = _targets(framework, plan, work, batch, inputs_path)
        check = _reference_check(framework, reference_path)
    except Exception as e:  # any framework's failure is that framework's row, not the bench's
        for mode in modes_of(framework):
            emit("bench_row", **error_row(framework, mode, batch, first_line(e)))
        return
    for mode, call, fetch in targets:
        try:
            times, max_abs_err, warmup = measure(call, fetch, check, settings["warmup"], settings["iterations"])
            row = timing_row(framework, mode, batch, times, max_abs_err, warmup)
        except Exception as e:
            row = error_row(framework, mode, batch, first_line(e))
        emit("bench_row", **row)



def main(argv):
    if len(argv) != 3:
        raise StepError("usage: bench_worker FRAMEWORK PLAN.json BATCH")
    run_worker(argv[0], argv[1], int(argv[2]))


if __name__ == "__main__":
    run_main(main)
