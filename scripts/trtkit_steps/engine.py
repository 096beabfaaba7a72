"""Build a TensorRT engine from artifacts/model.onnx and verify it against Keras.

    python3 -m trtkit_steps.engine PLAN.json

The engine is built, run and compared with Polygraphy when the image has
TensorRT's Python API (8.0 or newer), else with trtexec. Either way it is then
run on the sample inputs and must match the Keras reference. An engine only
runs with the TensorRT version and the GPU model it was built with; so does the
timing cache, which spares a rebuild most of its tactic timing, so its name
holds both. The cache a build ends with is one of its artifacts (timing.cache):
replayed with --timing-cache, a rebuild picks the same tactics wherever
TensorRT allows, and --strict-timing-cache makes any miss an error. The pieces
are in trtkit_steps/trt/.
"""
import hashlib
import os
from collections import namedtuple

import numpy as np

from trtkit_steps import contract
from trtkit_steps.comparison import gate, keep_evidence, miss, shortfall, tolerance, verdict
from trtkit_steps.errors import StepError, Unsupported, VerificationFailed
from trtkit_steps.events import emit, run_main, step
from trtkit_steps.storage import load_reference, nonempty, read_bytes, read_json, write_atomic
from trtkit_steps.trt import gpu
from trtkit_steps.trt.calibration import Calibration, calibration_cache_name, int8_calibration_data
from trtkit_steps.trt.polygraphy_api import PolygraphyApi
from trtkit_steps.trt.profiles import reference_runs, resolve_profiles
from trtkit_steps.trt.settings import (
    STRONGLY_TYPED_FROM,
    BuildJob,
    BuildSettings,
    check_precision,
    choose_recipe,
    default_atol,
    import_tensorrt,
    timing_cache_name,
)
from trtkit_steps.trt.trtexec import TRTEXEC_DIRS, Trtexec, find_trtexec


def select_backend():
    """Polygraphy over TensorRT's Python API when the image has it, else trtexec."""
    trt = import_tensorrt()
    if trt is not None:
        return PolygraphyApi(trt)
    exe = find_trtexec()
    if exe is None:
        raise Unsupported("no TensorRT in this image: neither the tensorrt Python package (8.0 or newer) nor "
                          f"trtexec (looked on PATH and in {', '.join(TRTEXEC_DIRS)})")
    return Trtexec(exe)


# --- the step ------------------------------------------------------------------

def _build_job(plan, work, io, settings, trt_version, gpu_name, capability):
    artifacts = os.path.join(work, contract.ARTIFACTS)
    onnx = os.path.join(artifacts, "model.onnx")
    cache_dir = plan["cache_dir"]
    os.makedirs(cache_dir, exist_ok=True)
    shared_timing_cache = os.path.join(cache_dir, timing_cache_name(trt_version, gpu_name, capability))
    # A pinned cache (--timing-cache) is replayed as given, from a copy beside the artifacts (the data folder is
    # read-only, and Polygraphy locks a cache with a file beside it); else this model's cache for this TensorRT/GPU.
    load_timing_cache = shared_timing_cache
    if plan["timing_cache"]:
        load_timing_cache = os.path.join(work, "replayed-timing.cache")
        write_atomic(load_timing_cache, read_bytes(plan["timing_cache"]))
    if settings.strict_timing_cache and not nonempty(load_timing_cache):
        raise StepError("--strict-timing-cache needs a timing cache to replay: --timing-cache FILE")
    calibration = None
    if settings.recipe == "rewrite":    # the reduced-precision model, Q/DQ scales and all
        onnx = os.path.join(artifacts, contract.REDUCED_ONNX[settings.precision])
        if not os.path.isfile(onnx):
            raise Unsupported(f"--precision-recipe rewrite needs {os.path.basename(onnx)}: an earlier output must "
                              f"be exported with --precision {settings.precision}")
    elif settings.precision == "int8":
        arrays = int8_calibration_data(plan, io["inputs"])
        shared = os.path.join(cache_dir, calibration_cache_name(onnx, trt_version, arrays))
        calibration = Calibration(arrays, os.path.join(artifacts, "calibration.cache"), shared)
    return BuildJob(settings, onnx, os.path.join(artifacts, "model.plan"),
                    load_timing_cache if nonempty(load_timing_cache) else None,
                    os.path.join(artifacts, "timing.cache"), calibration), shared_timing_cache


def run_reference(backend, engine_path, inputs, profiles, scratch, index=0):
    """The engine's outputs for the reference inputs on optimization profile `index` (its shapes: profiles), run
    in batches the profile takes (reference_runs)."""
    rows = len(next(iter(inputs.values())))
    runs = reference_runs(profiles, rows)
    results = backend.run(engine_path, [{name: array[indices] for name, array in inputs.items()}
                                        for indices, _ in runs], scratch, index)
    if len(runs) == 1 and runs[0][1] == len(runs[0][0]):
        return results[0]  # the reference as it is: outputs need not have the batch first
    for name, array in results[0].items():
        if np.ndim(array) == 0 or len(array) != len(runs[0][0]):
            raise StepError(f"output {name} (shape {list(np.shape(array))}) does not have the batch first, so the "
                            f"reference's {rows} rows cannot be verified in batches of {len(runs[0][0])}: give "
                            f"--shapes whose batch range takes {rows} rows")
    return {name: np.concatenate([result[name][:kept] for result, (_, kept) in zip(results, runs)])
            for name in results[0]}


class Checked(namedtuple("Checked", "errors atol inputs expected actual passed")):
    """An engine's outputs against Keras on its worst profile: gate()'s arguments."""

    def missed(self):
        return not verdict(self.errors, self.atol, self.passed)


def _worst_profile(backend, work, engine_path, plan, settings):
    """Every optimization profile against Keras (each has kernels of its own): the worst one, as gate() judges."""
    inputs, expected = load_reference(work)
    atol = tolerance(plan, default_atol(settings.precision, settings.tf32), expected)
    checked = []
    for index, profiles in enumerate(settings.all_profiles):
        actual = run_reference(backend, engine_path, inputs, profiles, os.path.join(work, "trtexec-verify"), index)
        errors, passed = backend.compare(expected, actual, atol)
        checked.append((passed is False, shortfall(errors, atol), errors, passed, actual))
    _, _, errors, passed, actual = max(checked, key=lambda found: found[:2])
    return Checked(errors, atol, inputs, expected, actual, passed)


def _gate(work, worst, hint=""):
    try:
        gate("model.plan", worst.errors, worst.atol, os.path.join(work, contract.EVIDENCE), worst.inputs,
             worst.expected, worst.actual, worst.passed)
    except VerificationFailed as failed:
        raise VerificationFailed(str(failed) + hint, failed.details) from None


def _verify(backend, work, engine_path, plan, settings):
    """The engine against Keras, with what to try instead when it misses."""
    _gate(work, _worst_profile(backend, work, engine_path, plan, settings),
          _recipe_hint(work, settings, backend.major, backend.has_loops))


def _recipe_hint(work, settings, trt_major, has_loops):
    """What to try when an engine of the builder-flag recipe misses and auto did not rebuild it (flags asked for, or
    no rewrite to build): the rewrite, whose types were chosen against Keras (on TensorRT 8.6 a Keras 2 masked
    LSTM's FP16 flags engine missed, where its rewrite passed on the CPU). Below
    TensorRT 10 it is built weakly typed, which made no engine of either masked LSTM tried on the H100 (Myelin:
    "Mismatched type ... f16 vs. expected type:f32"): said where the network loops, or may (has_loops None: trtexec
    does not tell), not for an EfficientNet. Measured while TensorRT 8.6's casts went unfollowed (every layer asked
    FP32, those fed FP16 by a cast too: likely that mismatch), so the next GPU run decides whether it stays."""
    if settings.recipe != "flags":
        return ""
    reduced = contract.REDUCED_ONNX[settings.precision]
    missing = not os.path.isfile(os.path.join(work, contract.ARTIFACTS, reduced))
    loops_unbuilt = trt_major < STRONGLY_TYPED_FROM and has_loops is not False
    return (f"; the builder flags let TensorRT pick each layer's precision: --precision-recipe rewrite builds "
            f"{reduced}, whose precision was chosen and verified against Keras"
            + (f" (export with --precision {settings.precision} to make it)" if missing else "")
            + (f"; TensorRT {trt_major} builds no engine of it for recurrent layers exported as ONNX Loops: "
               f"for those, --precision fp32 or a TensorRT 10 or newer tag" if loops_unbuilt else ""))


def _precision_warnings(precision, layer_precisions):
    """What the engine's layers say against --precision: INT8 asked and no INT8 layer (TensorRT found FP16 kernels
    faster: a small CNN on an H100), or reduced precision asked and most layers FP32 (TensorRT 8.6's rewrite while
    trtkit missed its parser's cast layers: ResNet50's engine came out all FP32 kernels)."""
    if precision == "fp32" or not layer_precisions:
        return []
    counts = ", ".join(f"{n} {name.upper()}" for name, n in sorted(layer_precisions.items()))
    fp32, total = layer_precisions.get("fp32", 0), sum(layer_precisions.values())
    warnings = []
    if precision == "int8" and not layer_precisions.get("int8"):
        warnings.append(f"no engine layer runs in INT8 ({counts}): TensorRT found no INT8 kernel faster on this "
                        "GPU, so INT8 buys this model nothing here")
    if fp32 * 2 > total:
        warnings.append(f"{fp32} of the engine's {total} layers run in FP32 despite --precision {precision} "
                        f"({counts}): expect FP32's speed")
    return warnings


def _engine_options(plan):
    """The build options an engine is built with, as the engine record keeps them (data files by their being given:
    their bytes and paths are the manifest's)."""
    return dict((option.key, plan[option.key]) for option in contract.BUILD_OPTIONS
                if option.shapes("engine") and option.kind != "data")


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _build(backend, plan, work, io, settings, device):
    """model.plan by settings' recipe: the build job, and the sha256 of the timing cache it started from."""
    job, shared_timing_cache = _build_job(plan, work, io, settings, backend.version, device[0],
                                          device[1].split("."))
    loaded_sha256 = _sha256(job.load_timing_cache) if job.load_timing_cache else None
    backend.build(job)
    write_atomic(shared_timing_cache, read_bytes(job.save_timing_cache))  # this model's next build starts here
    if job.calibration:
        job.calibration.save()
    return job, loaded_sha256


def _report_engine(backend, plan, settings, device, job, loaded_sha256, build_seconds):
    """The engine event, and what the engine's layers say against --precision."""
    gpu_name, compute_capability = device
    layer_precisions = backend.layer_precisions(job.engine)
    emit("engine", tensorrt=backend.version, gpu=gpu_name, compute_capability=compute_capability,
         profiles=settings.profiles, recipe=settings.recipe, build_seconds=round(build_seconds, 3),
         engine_bytes=os.path.getsize(job.engine), builder=backend.name, timing_cache_hit=loaded_sha256 is not None,
         timing_cache_loaded_sha256=loaded_sha256, timing_cache_pinned=bool(plan["timing_cache"]),
         calibration_cache_reused=job.calibration.reused if job.calibration else None, portable=False,
         portability_note=f"engines run only with TensorRT {backend.version} on {gpu_name} "
                          f"(sm {compute_capability.replace('.', '')})",
         layer_precisions=layer_precisions, **_engine_options(plan))
    for message in _precision_warnings(settings.precision, layer_precisions):
        emit("warning", message=message, layer=None)


def _emit_recipe(settings, why):
    if settings.recipe != "fp32":
        emit("recipe", recipe=settings.recipe, reason=why,
             onnx=contract.REDUCED_ONNX[settings.precision] if settings.recipe == "rewrite" else "model.onnx")


def _rewrites_instead(plan, settings, work, worst):
    """Whether auto's builder-flag engine missed where the rewrite, verified against Keras, is there to build: the
    flags leave each layer's precision to TensorRT (a Keras 2 masked LSTM's Loop ran FP16 and missed by 0.118 on
    an H100), the rewrite kept FP32 what had to stay FP32."""
    return (contract.rewrites_on_miss(plan) and settings.recipe == "flags" and worst.missed()
            and os.path.isfile(os.path.join(work, contract.ARTIFACTS, contract.REDUCED_ONNX[settings.precision])))


def _rebuild_from_rewrite(backend, plan, work, io, settings, device, flags_job, worst):
    """auto's second try: the engine built from the rewrite, verified; else the builder-flag engine's miss with the
    rewrite's failure beside it. The flags' calibration cache goes (a Q/DQ engine has none)."""
    flags_miss = miss("the builder-flag engine", worst.errors, worst.atol)
    emit("warning", message=f"{flags_miss}: building the engine from {contract.REDUCED_ONNX[settings.precision]}, "
                            "whose precision was chosen and verified against Keras, instead", layer=None)
    if flags_job.calibration:
        os.remove(flags_job.calibration.cache_path)
    settings.recipe = "rewrite"
    _emit_recipe(settings, f"auto: {flags_miss}; the rewrite's types were chosen against Keras")
    try:
        with step("engine-rewrite") as timed:
            job, loaded_sha256 = _build(backend, plan, work, io, settings, device)
        _report_engine(backend, plan, settings, device, job, loaded_sha256, timed.seconds)
        with step("verify-rewrite"):
            _gate(work, _worst_profile(backend, work, job.engine, plan, settings))
    except StepError as failed:
        if not isinstance(failed, VerificationFailed):     # no engine of the rewrite: the flags' evidence is kept
            keep_evidence(os.path.join(work, contract.EVIDENCE), worst.inputs, worst.expected, worst.actual)
        raise VerificationFailed(f"{flags_miss}; the rewrite, tried instead: {failed}", failed.details) from None
    return job


def main(argv):
    plan = contract.read_plan(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    io = read_json(os.path.join(work, contract.IO))
    settings = BuildSettings(plan, resolve_profiles(io["inputs"], plan["shapes"], plan["typical_batch"]))
    device = gpu.device_info()
    backend = select_backend()
    emit("versions", tensorrt=backend.version)
    settings.recipe, why = choose_recipe(backend.version, settings.precision, plan["precision_recipe"])
    check_precision(backend.major, settings.recipe, settings.io_precision)
    _emit_recipe(settings, why)

    with step("engine-build") as timed:
        job, loaded_sha256 = _build(backend, plan, work, io, settings, device)
    _report_engine(backend, plan, settings, device, job, loaded_sha256, timed.seconds)
    with step("verify-engine"):
        worst = _worst_profile(backend, work, job.engine, plan, settings)
        rewrite_instead = _rewrites_instead(plan, settings, work, worst)
        if not rewrite_instead:
            _gate(work, worst, _recipe_hint(work, settings, backend.major, backend.has_loops))
    if rewrite_instead:
        job = _rebuild_from_rewrite(backend, plan, work, io, settings, device, job, worst)
    emit("artifact", name="model.plan", kind="engine")
    emit("artifact", name="timing.cache", kind="timing-cache")
    if job.calibration:
        emit("artifact", name="calibration.cache", kind="calibration-cache")


if __name__ == "__main__":
    run_main(main)
