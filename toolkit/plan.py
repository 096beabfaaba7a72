"""BuildPlan: the validated options of one build, and what the container receives.

Pure logic (no Docker): parsing of --gpus/--shapes/--workspace, the choice of
target, and the plan.json the in-container pipeline reads.
"""
import re
from dataclasses import dataclass, field
from pathlib import Path

import docker.types
import typer

from toolkit.errors import GpuUnavailable, TargetUnsupported
from toolkit.modelfile import ModelRef
from toolkit.tags import TFTRT_IMAGES

DEFAULT_IMAGE = "nvcr.io/nvidia/tensorrt"
TARGETS = ("onnx", "frozen", "engine", "tftrt")
PRECISIONS = ("fp32", "fp16", "int8")

# Where things appear inside the build container.
SCRIPTS_MOUNT = "/trtkit/scripts"
MODEL_MOUNT = "/trtkit/model"
WORK_MOUNT = "/trtkit/work"
CACHE_MOUNT = "/trtkit/cache"
DATA_MOUNT = "/trtkit/data"

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$", re.IGNORECASE)


@dataclass(frozen=True)
class GpuRequest:
    mode: str                  # "auto" | "all" | "none" | "ids"
    ids: tuple[str, ...] = ()

    def device_requests(self, available: bool) -> list[docker.types.DeviceRequest]:
        if self.mode == "none" or (self.mode == "auto" and not available):
            return []
        if self.mode == "ids":
            return [docker.types.DeviceRequest(device_ids=list(self.ids), capabilities=[["gpu"]])]
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]


def parse_gpus(text: str) -> GpuRequest:
    text = text.strip().lower()
    if text in ("auto", "all", "none"):
        return GpuRequest(text)
    ids = tuple(part.strip() for part in text.split(","))
    if not all(i.isdigit() for i in ids):
        raise typer.BadParameter(f"expected all, none, auto or GPU indices like 0,1; got {text!r}")
    return GpuRequest("ids", ids)


def parse_shapes(specs: list[str]) -> dict[str, list]:
    """NAME:MIN/OPT/MAX, each a batch size (64) or a full shape (64x11x192)."""
    shapes = {}
    for spec in specs:
        name, sep, ranges = spec.rpartition(":")
        parts = ranges.split("/")
        if not sep or not name or len(parts) != 3:
            raise typer.BadParameter(f"expected NAME:MIN/OPT/MAX (e.g. lstm_1_input:1/1024/100000), got {spec!r}")
        try:
            dims = [int(p) if p.isdigit() else [int(d) for d in p.lower().split("x")] for p in parts]
        except ValueError:
            raise typer.BadParameter(f"shape sizes must be integers like 64 or 64x11x192, got {spec!r}") from None
        batches = [d if isinstance(d, int) else d[0] for d in dims]
        if not 1 <= batches[0] <= batches[1] <= batches[2]:
            raise typer.BadParameter(f"{spec!r}: need 1 <= MIN <= OPT <= MAX")
        shapes[name] = dims
    return shapes


def parse_size(text: str | None) -> int | None:
    if text is None:
        return None
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise typer.BadParameter(f"expected a size like 512M or 4G, got {text!r}")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "_KMGT".index(unit.upper() or "_"))


def image_reference(image: str, tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise typer.BadParameter(f"{tag!r} is not a valid image tag", param_hint="--tag")
    return f"{image}:{tag}"


@dataclass(frozen=True)
class TargetChoice:
    target: str
    reason: str


def choose_target(requested: str | None, gpus: GpuRequest, gpu_runtime: bool, toolchain: dict) -> TargetChoice:
    """Which artifact to build; fails early when the tag's stack cannot build it."""
    has_gpu = gpus.mode != "none" and (gpu_runtime or gpus.mode != "auto")
    tensorrt = toolchain.get("tensorrt") or (toolchain.get("trtexec") or {}).get("version")
    if requested == "tftrt" and not toolchain.get("tftrt"):
        raise TargetUnsupported(
            f"this image's stack has no TF-TRT (TensorFlow {toolchain.get('tensorflow') or 'missing'}; "
            f"TF 2.18 dropped it): use --target engine, or an image that has it: {TFTRT_IMAGES}")
    if requested == "engine" and not tensorrt:
        raise TargetUnsupported("this image has no TensorRT (no tensorrt module, no trtexec): "
                                "use --target onnx, or an nvcr.io/nvidia/tensorrt tag")
    if requested in ("engine", "tftrt") and not has_gpu:
        raise GpuUnavailable(f"--target {requested} needs a GPU, but {_why_no_gpu(gpus)}",
                             hint="use --target onnx or frozen, or a host with the NVIDIA Container Toolkit")
    if requested:
        return TargetChoice(requested, "requested with --target")
    if not has_gpu:
        return TargetChoice("onnx", f"default: {_why_no_gpu(gpus)}, so no TensorRT engine can be built here")
    if not tensorrt:
        return TargetChoice("onnx", "default: the image has no TensorRT")
    return TargetChoice("engine", f"default: a GPU is requested and the image has TensorRT {tensorrt}")


def _why_no_gpu(gpus: GpuRequest) -> str:
    return "--gpus none was given" if gpus.mode == "none" else "this Docker engine has no NVIDIA runtime"


@dataclass
class BuildPlan:
    model: ModelRef
    image: str
    target: str | None = None
    precision: str = "fp32"
    tf32: bool = False
    shapes: dict = field(default_factory=dict)
    gpus: GpuRequest = GpuRequest("auto")
    out_dir: Path | None = None
    sample_data: Path | None = None
    calib_data: Path | None = None
    atol: float | None = None
    workspace: int | None = None
    opset: int = 17
    bench: dict | None = None
    seed: int = 0

    def data_mounts(self) -> dict[str, tuple[str, Path]]:
        """role -> (container path, host path) of the user's data files."""
        return {role: (f"{DATA_MOUNT}/{role}{path.suffix}", path.absolute())
                for role, path in (("sample", self.sample_data), ("calib", self.calib_data)) if path is not None}

    def container_plan(self, target: str, mode: str = "build") -> dict:
        """plan.json for scripts/pipeline.py; mode is build, inspect or bench (artifacts already there)."""
        data = {role: container_path for role, (container_path, _) in self.data_mounts().items()}
        return {
            "model": f"{MODEL_MOUNT}/{self.model.path.name}",
            "model_format": self.model.format,
            "target": target,
            "mode": mode,
            "precision": self.precision,
            "tf32": self.tf32,
            "shapes": self.shapes,
            "sample_data": data.get("sample"),
            "calib_data": data.get("calib"),
            "atol": self.atol,
            "workspace": self.workspace,
            "opset": self.opset,
            "bench": self.bench,
            "seed": self.seed,
            "cache_dir": CACHE_MOUNT,
            "tactic_sources": None,   # TensorRT's default; the GPU kit disables CUBLAS, CUBLAS_LT, CUDNN
        }

    def options(self) -> dict:
        """The options as recorded in the manifest."""
        return {
            "target": self.target, "precision": self.precision, "tf32": self.tf32,
            "shapes": self.shapes, "gpus": self.gpus.mode if self.gpus.mode != "ids" else ",".join(self.gpus.ids),
            "sample_data": str(self.sample_data) if self.sample_data else None,
            "calib_data": str(self.calib_data) if self.calib_data else None,
            "atol": self.atol, "workspace": self.workspace, "opset": self.opset, "bench": self.bench,
            "seed": self.seed,
        }
