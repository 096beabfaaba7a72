"""Issue 21's graph-capture defect, on a GPU: Engine.predict on an engine TensorRT cannot capture into a CUDA graph.

    . /tmp/trt86/env.sh && python3.9 benchmarks/gpu_proof/capture_check.py      (the GPU kit: TensorRT 8.6, numpy)
    docker run --rm --gpus all -v $PWD:/repo:ro -v BUILDS:/builds:ro trtkit/tensorrt:8.6-py3 \
        python3 /repo/benchmarks/gpu_proof/capture_check.py /builds/*/          (trtkit's own engines)

Given trtkit output folders, it checks each one's model.plan on first calls of five batch sizes of its reference
inputs (run.sh precision-runtime runs it on every engine it built; on the H100 TensorRT 8.6 could not capture
three of those). Without, it builds with TensorRT's network API (the kit has no onnx) a Conv1D and two GRU
layers, the GRUs as loops the way TensorRT's ONNX parser builds an ONNX GRU, then, should TensorRT capture that,
the same with its RNNv2 GRU layer (on the H100 TensorRT 8.6.0 captured both). Each engine runs through this
tree's trtkit.runtime (the folder toolkit/runtime, imported as trtkit_runtime), and the check is: the outputs
match (numpy's Conv1D and GRUs, or the Keras reference within the build's tolerance), nothing of TensorRT's
"Error Code 3" reaches stderr (the file descriptor, where TensorRT prints), and trtkit warns once that CUDA
graphs are off. One JSON line per engine; exit 0 when every engine TensorRT could not capture passed, 1 when one
failed, 3 when TensorRT captured every engine tried (nothing to check on this TensorRT).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))     # runtime_check's helpers, for trtkit's output folders
STEPS, FEATURES, FILTERS, HIDDEN = 12, 6, 8, 16
BATCHES = (1, 2, 3, 8, 64)          # five first calls of a shape, all small batches (graph candidates)
ATOL = 1e-4                         # TF32 off: FP32 as numpy computes it, but for the order of sums


def import_runtime():
    """This tree's trtkit.runtime, as the box gets it: the package folder as trtkit_runtime."""
    folder = tempfile.mkdtemp()
    os.symlink(os.path.join(REPO, "toolkit", "runtime"), os.path.join(folder, "trtkit_runtime"))
    sys.path.insert(0, folder)
    import trtkit_runtime
    return trtkit_runtime


def weights(seed=0):
    rng = np.random.default_rng(seed)
    w = {"conv": rng.standard_normal((FILTERS, FEATURES, 1, 3)).astype(np.float32) * 0.3,
         "conv_bias": rng.standard_normal(FILTERS).astype(np.float32) * 0.1}
    for layer, inputs in (("gru1", FILTERS), ("gru2", HIDDEN)):
        for gate in "zrn":
            w[f"{layer}_W{gate}"] = rng.standard_normal((inputs, HIDDEN)).astype(np.float32) * 0.3
            w[f"{layer}_U{gate}"] = rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32) * 0.3
            w[f"{layer}_b{gate}"] = rng.standard_normal((1, HIDDEN)).astype(np.float32) * 0.1
    return w


# --- numpy's answer -------------------------------------------------------------

def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference(x, w, reset_after=True):
    """reset_after: the reset gate scales H·U (ONNX's linear_before_reset, Keras' reset_after), else H before it
    (TensorRT's RNNv2)."""
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    y = sum(padded[:, k:k + STEPS, :] @ w["conv"][:, :, 0, k].T for k in range(3)) + w["conv_bias"]
    for layer in ("gru1", "gru2"):
        h, steps = np.zeros((len(x), HIDDEN), np.float32), []
        for t in range(STEPS):
            xt = y[:, t]
            z = sigmoid(xt @ w[f"{layer}_Wz"] + h @ w[f"{layer}_Uz"] + w[f"{layer}_bz"])
            r = sigmoid(xt @ w[f"{layer}_Wr"] + h @ w[f"{layer}_Ur"] + w[f"{layer}_br"])
            recurrent = r * (h @ w[f"{layer}_Un"]) if reset_after else (r * h) @ w[f"{layer}_Un"]
            n = np.tanh(xt @ w[f"{layer}_Wn"] + recurrent + w[f"{layer}_bn"])
            h = n + z * (h - n)
            steps.append(h)
        y = np.stack(steps, 1)
    return y


# --- TensorRT's networks --------------------------------------------------------

def conv1d(trt, network, x, w):
    """(N, T, C) -> (N, T, FILTERS): a convolution of kernel (1, 3) over (N, C, 1, T), as Keras' Conv1D exports."""
    to_image = network.add_shuffle(x)
    to_image.first_transpose = (0, 2, 1)
    to_image.reshape_dims = (0, FEATURES, 1, STEPS)
    conv = network.add_convolution_nd(to_image.get_output(0), FILTERS, (1, 3), trt.Weights(w["conv"]),
                                      trt.Weights(w["conv_bias"]))
    conv.padding_nd = (0, 1)
    back = network.add_shuffle(conv.get_output(0))
    back.reshape_dims = (0, FILTERS, STEPS)
    back.second_transpose = (0, 2, 1)
    return back.get_output(0)


def loop_gru(trt, network, sequence, w, layer):
    """(N, T, C) -> (N, T, HIDDEN): a GRU as a TensorRT loop over the steps, as the ONNX parser builds one."""
    def constant(array):
        return network.add_constant(array.shape, trt.Weights(np.ascontiguousarray(array))).get_output(0)

    def matmul(a, b):
        return network.add_matrix_multiply(a, trt.MatrixOperation.NONE, b, trt.MatrixOperation.NONE).get_output(0)

    def op(a, b, kind):
        return network.add_elementwise(a, b, kind).get_output(0)

    def act(a, kind):
        return network.add_activation(a, kind).get_output(0)

    plus, times, minus = trt.ElementWiseOperation.SUM, trt.ElementWiseOperation.PROD, trt.ElementWiseOperation.SUB
    steps = constant(np.array(STEPS, np.int32))
    loop = network.add_loop()
    loop.add_trip_limit(steps, trt.TripLimit.COUNT)
    xt = loop.add_iterator(sequence, 1).get_output(0)                              # (N, C)
    features = FILTERS if layer == "gru1" else HIDDEN
    summed = network.add_reduce(sequence, trt.ReduceOperation.SUM, 1 << 1, False).get_output(0)
    h0 = matmul(summed, constant(np.zeros((features, HIDDEN), np.float32)))        # zeros of (N, HIDDEN)
    state = loop.add_recurrence(h0)
    h = state.get_output(0)

    def gate(name, recurrent):
        return op(op(matmul(xt, constant(w[f"{layer}_W{name}"])), recurrent, plus), constant(w[f"{layer}_b{name}"]),
                  plus)

    z = act(gate("z", matmul(h, constant(w[f"{layer}_Uz"]))), trt.ActivationType.SIGMOID)
    r = act(gate("r", matmul(h, constant(w[f"{layer}_Ur"]))), trt.ActivationType.SIGMOID)
    n = act(gate("n", op(r, matmul(h, constant(w[f"{layer}_Un"])), times)), trt.ActivationType.TANH)
    following = op(n, op(z, op(h, n, minus), times), plus)
    state.set_input(1, following)
    out = loop.add_loop_output(following, trt.LoopOutput.CONCATENATE, 1)
    out.set_input(1, steps)
    return out.get_output(0)


def rnnv2_gru(trt, network, sequence, w, layer):
    """A GRU with TensorRT's RNNv2 layer (deprecated in 8.6), which resets H before its matrix multiply."""
    rnn = network.add_rnn_v2(sequence, 1, HIDDEN, STEPS, trt.RNNOperation.GRU)
    rnn.input_mode = trt.RNNInputMode.LINEAR
    for gate, name in ((trt.RNNGateType.UPDATE, "z"), (trt.RNNGateType.RESET, "r"), (trt.RNNGateType.HIDDEN, "n")):
        rnn.set_weights_for_gate(0, gate, True, trt.Weights(np.ascontiguousarray(w[f"{layer}_W{name}"].T)))
        rnn.set_weights_for_gate(0, gate, False, trt.Weights(np.ascontiguousarray(w[f"{layer}_U{name}"].T)))
        rnn.set_bias_for_gate(0, gate, True, trt.Weights(np.ascontiguousarray(w[f"{layer}_b{name}"][0])))
        rnn.set_bias_for_gate(0, gate, False, trt.Weights(np.zeros(HIDDEN, np.float32)))
    return rnn.get_output(0)


def build(trt, gru, dynamic, w, path):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    x = network.add_input("x", trt.float32, (-1 if dynamic else 8, STEPS, FEATURES))
    y = conv1d(trt, network, x, w)
    for layer in ("gru1", "gru2"):
        y = gru(trt, network, y, w, layer)
    y.name = "y"
    network.mark_output(y)
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)
    config.set_tactic_sources(0)    # the kit's cuBLAS, cuBLASLt and cuDNN are stubs
    if dynamic:
        profile = builder.create_optimization_profile()
        profile.set_shape("x", (1, STEPS, FEATURES), (8, STEPS, FEATURES), (64, STEPS, FEATURES))
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT could not build the network (its log above says why)")
    with open(path, "wb") as f:
        f.write(plan)


# --- the check --------------------------------------------------------------------

@contextmanager
def stderr_of_process():
    """Everything written to file descriptor 2 meanwhile (TensorRT prints there, past Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    found: list[str] = []
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield found
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            found.append(f.read().decode(errors="replace"))


def run(runtime, path, w, batches, reset_after):
    """(max abs error against numpy, trtkit's warnings, what reached stderr) over first calls of each batch."""
    rng = np.random.default_rng(1)
    worst = 0.0
    with stderr_of_process() as stderr, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with runtime.Engine(path, check=False) as engine:
            for batch in batches:
                x = rng.standard_normal((batch, STEPS, FEATURES)).astype(np.float32)
                worst = max(worst, float(np.abs(engine.predict(x) - reference(x, w, reset_after)).max()))
    return worst, [str(warning.message) for warning in caught], stderr[0]


def verdict(line, worst, atol, said, stderr):
    """line with what the run showed; passed is None where TensorRT captured the engine (nothing to check)."""
    graphs_off = [message for message in said if "CUDA graphs are off" in message]
    line = dict(line, max_abs_err=worst, trtkit_warnings=said, error_code_3_on_stderr="Error Code 3" in stderr,
                stderr=stderr[-2000:], captured=not graphs_off)
    line["passed"] = None if not graphs_off else bool(
        worst <= atol and len(graphs_off) == 1 and "Error Code 3" not in stderr and "[E]" not in stderr)
    print(json.dumps(line), flush=True)
    return line["passed"]


def check_build(runtime, out):
    """A trtkit output folder's engine on first calls of each of BATCHES rows of its reference inputs."""
    # imported here, after import_runtime: runtime_check imports trtkit_runtime
    from runtime_check import largest_difference, load_arrays, repeated
    inputs, expected = (load_arrays(os.path.join(out, f"reference-{kind}.npz")) for kind in ("inputs", "outputs"))
    with open(os.path.join(out, "trtkit.json")) as f:
        manifest = json.load(f)
    atol = next(v["atol"] for v in manifest["verification"] if v["artifact"] == "model.plan")
    worst = 0.0
    with stderr_of_process() as stderr, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with runtime.Engine(os.path.join(out, "model.plan"), check=False) as engine:
            for batch in BATCHES:
                got = engine.predict(repeated(inputs, batch), as_dict=True)
                worst = max(worst, largest_difference(got, repeated(expected, batch)))
    return verdict({"engine": out, "tensorrt": manifest["engine"].get("tensorrt")}, worst,
                   float("inf") if atol is None else atol, [str(w.message) for w in caught], stderr[0])


def check_networks(runtime):
    """The verdict of the first network-API engine TensorRT cannot capture, or None when it captured them all."""
    import tensorrt as trt
    w = weights()
    work = tempfile.mkdtemp()
    # loop: the ONNX parser's GRU (dynamic batch, reset after the matrix multiply); else RNNv2 (one batch)
    for name, gru, loop in (("conv1d-loop-gru", loop_gru, True), ("conv1d-rnnv2-gru", rnnv2_gru, False)):
        path = os.path.join(work, f"{name}.plan")
        build(trt, gru, loop, w, path)
        worst, said, stderr = run(runtime, path, w, BATCHES if loop else (8,), loop)
        passed = verdict({"engine": name, "tensorrt": trt.__version__}, worst, ATOL, said, stderr)
        if passed is not None:
            return passed
    return None


def main(folders):
    runtime = import_runtime()
    verdicts = [check_build(runtime, out) for out in folders] if folders else [check_networks(runtime)]
    checked = [v for v in verdicts if v is not None]
    if not checked:
        print(json.dumps({"error": "TensorRT captured every engine tried: nothing to check here"}), flush=True)
        return 3
    return 0 if all(checked) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
