"""Which artifact a build makes: the choice of target from the toolchain probe.

The probe (scripts/trtkit_steps/probe.py) decides at build time; tags.py says what each known tag is expected to hold.
"""
from typing import NamedTuple

from trtkit_steps import contract

from .errors import GpuUnavailable, TargetUnsupported
from .plan import BuildPlan, GpuRequest

# The ONNX parsers before TensorRT 8 predate opset 13, the lowest opset trtkit exports.
MIN_ENGINE_TENSORRT = 8


# TF-TRT needs a TensorFlow 2.x (<= 2.17) built with TensorRT. The TensorRT images have none:
# python_setup.sh of 19.xx-20.xx tags brings TF 1.x, which the toolchain replaces with TF 2.6
# (trtkit's steps need TF 2). NVIDIA's TensorFlow images carry TF-TRT.
TFTRT_IMAGES = "nvcr.io/nvidia/tensorflow with a -tf2-py3 tag (TensorFlow <= 2.17)"


class TargetChoice(NamedTuple):
    target: str
    reason: str


def choose_target(requested: str | None, gpus: GpuRequest, gpu_runtime: bool, toolchain: dict,
                  model_format: str = "h5") -> TargetChoice:
    """Which artifact to build; fails early when the tag's stack cannot build it."""
    has_gpu = gpus.mode != "none" and (gpu_runtime or gpus.mode != "auto")
    tensorrt = tensorrt_version(toolchain)
    exported = contract.EXPORTED_TARGETS.get(model_format)
    if exported and requested and requested not in exported:
        raise TargetUnsupported(f"--target {requested} needs the Keras model: from {_described(model_format)} "
                                f"trtkit builds {' or '.join(exported)}")
    only = exported[0] if exported and len(exported) == 1 else None
    if only and not requested:
        return choose_target(only, gpus, gpu_runtime, toolchain, model_format)._replace(
            reason=f"default: the model is {_described(model_format)}, so its {only} is what is left to build; "
                   f"the probe found TensorRT {tensorrt} in the image, and a GPU is requested")
    if requested == "tftrt" and not toolchain.get("tftrt"):
        raise TargetUnsupported(
            f"this image's stack has no TF-TRT (TensorFlow {toolchain.get('tensorflow') or 'missing'}; "
            f"TF 2.18 dropped it): use --target engine, or an image that has it: {TFTRT_IMAGES}")
    if requested == "engine" and not tensorrt:
        raise TargetUnsupported("this image has no TensorRT (no tensorrt module, no trtexec): " +
                                ("use" if exported else "use --target onnx, or") + " an nvcr.io/nvidia/tensorrt tag")
    if requested in ("engine", "tftrt") and not has_gpu:
        elsewhere = "a host with the NVIDIA Container Toolkit"
        hint = f"build on {elsewhere}" if exported else f"use --target onnx or frozen, or {elsewhere}"
        raise GpuUnavailable(f"--target {requested} needs a GPU, but {_why_no_gpu(gpus)}", hint=hint)
    if requested:
        return TargetChoice(requested, "requested with --target")
    if not has_gpu:
        return TargetChoice("onnx", f"default: {_why_no_gpu(gpus)}, so no TensorRT engine can be built here")
    if not tensorrt:
        return TargetChoice("onnx", "default: the image has no TensorRT")
    if int(tensorrt.split(".")[0]) < MIN_ENGINE_TENSORRT:
        return TargetChoice("onnx", f"default: the image's TensorRT {tensorrt} is older than "
                                    f"{MIN_ENGINE_TENSORRT}.0, whose ONNX parser reads trtkit's exports (opset 13+)")
    return TargetChoice("engine", f"default: a GPU is requested and the image has TensorRT {tensorrt}")


def unshaped_keys(target: str) -> list[str]:
    """The build options (by key) that a build of target does not use: those only TensorRT reads, for an ONNX or
    frozen build."""
    return [option.key for option in contract.BUILD_OPTIONS if not option.shapes(target)]


def unused_options(plan: BuildPlan, target: str) -> list[str]:
    """The flags of options this plan sets (away from their defaults) that a build of target does not use (a
    project's matrix crosses targets with them, so they are noted, not refused)."""
    defaults = contract.option_defaults()
    return [contract.OPTIONS_BY_KEY[key].flag for key in unshaped_keys(target)
            if plan.settings[key] != defaults[key]]


def tensorrt_version(probe: dict) -> str | None:
    """The image's TensorRT: its Python package, else its trtexec."""
    return probe.get("tensorrt") or (probe.get("trtexec") or {}).get("version")


def _described(model_format: str) -> str:
    return "an earlier trtkit output" if model_format == contract.OUTPUT_FORMAT else f"an {model_format} file"


def _why_no_gpu(gpus: GpuRequest) -> str:
    return "--gpus none was given" if gpus.mode == "none" else "this Docker engine has no NVIDIA runtime"
