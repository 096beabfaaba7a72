"""Does TensorRT 8.6's FASTER_DYNAMIC_SHAPES_0805 preview feature (on by default: shapes handled by its Myelin
compiler) decide the LSTM's GPU time? One-batch engines of a trtkit export, built with the feature on and off.

    python3 benchmarks/preview_study.py OUT BATCH,BATCH,...

Needs a GPU, TensorRT 8.6 and numpy; the folder toolkit/runtime may sit beside this file as trtkit_runtime (as
copied into a TensorRT container). OUT is a trtkit output folder with model.onnx and its reference. For each
batch and setting it builds an engine at FP16 with float16 I/O and a profile of exactly that batch (cuBLAS,
cuBLASLt and cuDNN tactics off, as the GPU kit requires), and prints one JSON line: the build's seconds, the
engine's layers (a Myelin 'ForeignNode' or separate layers), its largest error against Keras, and trtkit.runtime's
median GPU time and wall time of a graph replay from page-locked input.

Evidence for issue 9's goal against PyTorch (this study only; trtkit build does not set preview features).
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import tensorrt as trt

try:
    from trtkit import runtime
except ImportError:  # copied beside this file
    import trtkit_runtime as runtime  # type: ignore[no-redef]

CALLS = 500
LEFT_OUT = ("CUBLAS", "CUBLAS_LT", "CUDNN")


def load_arrays(path):
    with np.load(path) as data:
        return [data["a%d" % i] for i in range(len(data["names"]))]


def build(onnx, batch, faster_dynamic_shapes, path):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    with open(onnx, "rb") as f:
        if not parser.parse(f.read()):
            raise RuntimeError(parser.get_error(0))
    return build_network(builder, network, batch, faster_dynamic_shapes, path)


def build_network(builder, network, batch, faster_dynamic_shapes, path):
    """An FP16 engine of network with float16 I/O and a profile of exactly `batch`, written to path; seconds."""
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    sources = config.get_tactic_sources()
    for name in LEFT_OUT:
        sources &= ~(1 << int(getattr(trt.TacticSource, name)))
    config.set_tactic_sources(sources)
    config.set_preview_feature(trt.PreviewFeature.FASTER_DYNAMIC_SHAPES_0805, faster_dynamic_shapes)
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    if any(dim < 0 for tensor in tensors for dim in tensor.shape):   # a network made for one batch has none
        profile = builder.create_optimization_profile()
        for tensor in tensors:
            shape = (batch,) + tuple(tensor.shape[1:])
            profile.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
    for tensor in tensors + [network.get_output(i) for i in range(network.num_outputs)]:
        tensor.dtype = trt.float16
    started = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("the build failed (its log above says why)")
    with open(path, "wb") as f:
        f.write(plan)
    return time.perf_counter() - started


def layers(plan_path):
    with open(plan_path, "rb") as f:
        engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(f.read())
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    names = [layer if isinstance(layer, str) else layer.get("Name", "") for layer in info["Layers"]]
    return len(names), sum("ForeignNode" in name for name in names)


def timed(plan_path, inputs, expected, batch):
    x = [np.take(a, np.arange(batch) % len(a), axis=0) for a in inputs]
    want = [np.take(a, np.arange(batch) % len(a), axis=0) for a in expected]
    with runtime.Engine(plan_path, check=False, time_device=True) as engine:
        pinned = engine.pinned_copy(x)
        got = engine.predict(pinned)
        got = got if isinstance(got, list) else [got]
        error = max(float(np.max(np.abs(g.astype(np.float64) - w))) for g, w in zip(got, want))
        device, wall = [], []
        for _ in range(CALLS):
            start = time.perf_counter()
            engine.predict(pinned)
            wall.append((time.perf_counter() - start) * 1000)
            device.append(engine.last_device_ms)
    return error, statistics.median(device), statistics.median(wall)


def main(argv):
    out, batches = argv[0], [int(b) for b in argv[1].split(",")]
    inputs = load_arrays(os.path.join(out, "reference-inputs.npz"))
    expected = load_arrays(os.path.join(out, "reference-outputs.npz"))
    for batch in batches:
        for faster in (True, False):
            path = "/tmp/preview-%d-%s.plan" % (batch, "on" if faster else "off")
            line = {"batch": batch, "faster_dynamic_shapes_0805": faster}
            try:
                line["build_s"] = round(build(os.path.join(out, "model.onnx"), batch, faster, path), 1)
                line["layers"], line["myelin_nodes"] = layers(path)
                error, device, wall = timed(path, inputs, expected, batch)
                line.update(max_abs_err_vs_keras=error, device_ms=round(device, 4), median_ms=round(wall, 4))
            except Exception as e:  # one line per setting, then the next
                line["error"] = "%s: %s" % (type(e).__name__, e)
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
