"""How TensorRT 8 (weakly typed) treats trtkit's FP16 rewrite: one model.fp16.onnx built with each way of asking
for its types, side by side (issue 22).

    python3 benchmarks/rewrite_types.py EXPORT [--opt-level N] [--disable-tactic-sources A,B] [--variants V,V]

EXPORT is a `trtkit build --target onnx --precision fp16` output (its model.fp16.onnx and trtkit.json). Needs a
GPU, TensorRT 8.6 and numpy, with scripts/trtkit_steps and this folder's layer_profile.py beside this file and
toolkit/runtime as trtkit_runtime (run.sh rewrite-types copies them so). One JSON line per variant: how many
layers each was asked to keep which type, TensorRT's warnings while building, build seconds, engine size, the
inspector's layer listing at the OPT shapes (each kernel's name says its types), and the GPU time of one run at
batch 1, 64 and 1024 (CUDA events, inputs of zeros). `report.py PROOF --rewrite-types` makes the table.

Why: on an H100 the rewrite engine of ResNet50 (variant `trtkit`, what --precision-recipe rewrite builds on 8.6)
came out all FP32 kernels (its input cast a no-op), 4.2x slower than the flags engine, and trtkit's build log
held no warning from TensorRT.
The variants tell whether TensorRT ignores the layers' precisions, wants their output types too, or
obeys only when told to. The fix they point to goes into polygraphy_api.py and is shown through the CLI.
"""
import argparse
import json
import os
import sys
import time

import layer_profile
import tensorrt as trt

from trtkit_steps.trt.polygraphy_api import context_at_opt_shapes, keep_onnx_types
from trtkit_steps.trt.profiles import resolve_profiles
from trtkit_steps.trt.settings import tactic_mask

BATCHES = (1, 64, 1024)
FLOATS = (trt.float32, trt.float16)


def onnx_types(network):
    keep_onnx_types(trt, network)


def output_types_too(network):
    """Each layer asked for a float type also asked for it on its float outputs."""
    for layer in (network.get_layer(i) for i in range(network.num_layers)):
        if layer.precision_is_set and layer.precision in FLOATS:
            for index in range(layer.num_outputs):
                if layer.get_output(index).dtype in FLOATS:
                    layer.set_output_type(index, layer.precision)


def fp32_only(network):
    """Of trtkit's asks, only the FP32 ones: the nodes the rewrite kept FP32 stay so, TensorRT picks the rest."""
    for layer in (network.get_layer(i) for i in range(network.num_layers)):
        if layer.precision_is_set and layer.precision == trt.float16:
            layer.reset_precision()


# name: (what is asked of the parsed network, the precision-constraint flag)
VARIANTS = {
    "trtkit": ([onnx_types], "PREFER_PRECISION_CONSTRAINTS"),     # --precision-recipe rewrite on 8.x
    "obey": ([onnx_types], "OBEY_PRECISION_CONSTRAINTS"),
    "outputs": ([onnx_types, output_types_too], "PREFER_PRECISION_CONSTRAINTS"),
    "outputs-obey": ([onnx_types, output_types_too], "OBEY_PRECISION_CONSTRAINTS"),
    "fp32-only": ([onnx_types, fp32_only], "PREFER_PRECISION_CONSTRAINTS"),
    "free": ([], None),                                                # the FP16 flag alone
}


class Log(trt.ILogger):
    """TensorRT's warnings and errors, kept."""

    def __init__(self):
        trt.ILogger.__init__(self)
        self.lines = []

    def log(self, severity, message):
        if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR, trt.ILogger.WARNING):
            self.lines.append(message)


def asked(network):
    """{"fp16" / "fp32" / "unset": layers}, and the first layers asked for FP32 (is the type flow right?)."""
    counts, fp32 = {"fp16": 0, "fp32": 0, "unset": 0}, []
    for layer in (network.get_layer(i) for i in range(network.num_layers)):
        if not layer.precision_is_set:
            counts["unset"] += 1
        elif layer.precision == trt.float16:
            counts["fp16"] += 1
        elif layer.precision == trt.float32:
            counts["fp32"] += 1
            fp32.append("%s (%s)" % (layer.name, layer.type.name))
    return counts, fp32[:8]


def build(onnx, profiles, variant, opt_level, disabled_tactics):
    log = Log()
    builder = trt.Builder(log)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(onnx):
        raise SystemExit("cannot parse %s: %s" % (onnx, parser.get_error(0)))
    steps, constraint = VARIANTS[variant]
    for step in steps:
        step(network)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.clear_flag(trt.BuilderFlag.TF32)      # as Polygraphy builds trtkit's engines
    if constraint:
        config.set_flag(getattr(trt.BuilderFlag, constraint))
    config.builder_optimization_level = opt_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.set_tactic_sources(tactic_mask(config.get_tactic_sources(), disabled_tactics, trt.TacticSource))
    profile = builder.create_optimization_profile()
    for name, shapes in profiles.items():
        profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    counts, fp32 = asked(network)
    start = time.time()
    plan = builder.build_serialized_network(network, config)
    seconds = time.time() - start
    return plan, {"variant": variant, "asked": counts, "first_asked_fp32": fp32, "build_s": round(seconds, 1),
                  "warnings": len(log.lines), "first_warnings": sorted(set(log.lines))[:10]}


def measure(plan):
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)
    inspector = engine.create_engine_inspector()
    context = context_at_opt_shapes(trt, engine)
    inspector.execution_context = context
    listing = inspector.get_engine_information(trt.LayerInformationFormat.ONELINE)
    times = {}
    for batch in BATCHES:
        with layer_profile.bound(engine, batch) as (run_context, stream):
            times[batch] = round(layer_profile.plain_ms(run_context, stream), 4)
    layers = sum(line.startswith("Name: ") for line in listing.splitlines())   # tensors have names too
    return {"engine_mb": round(plan.nbytes / 1e6, 1), "layers": layers, "engine_layers": listing, "device_ms": times}


def study(args):
    with open(os.path.join(args.export, "trtkit.json")) as manifest:
        profiles = resolve_profiles(json.load(manifest)["names"]["inputs"], {})
    onnx = os.path.join(args.export, "model.fp16.onnx")
    print(json.dumps({"tensorrt": trt.__version__, "onnx": onnx, "profiles": profiles}), flush=True)
    with layer_profile.cuda.current(0):
        for variant in args.variants.split(","):
            plan, result = build(onnx, profiles, variant, args.opt_level, args.disabled_tactics)
            if plan:
                result.update(measure(plan))
            print(json.dumps(result), flush=True)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export")
    parser.add_argument("--opt-level", type=int, default=3)
    parser.add_argument("--disable-tactic-sources", dest="disabled_tactics", default="",
                        type=lambda text: [name for name in text.split(",") if name])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    study(parser.parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
