"""BuildPlan: the validated options of one build, and the plan.json the container receives.

Pure logic (no Docker): the plan, and the choice of target from the probe of
the image's stack. Parsing of the command line lives in options.py; what the
container sees, and where, is in the contract (scripts/trtkit_steps/contract.py).
"""
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.contract import contract
from toolkit.errors import GpuUnavailable, TargetUnsupported
from toolkit.modelfile import ModelRef
from toolkit.tags import TFTRT_IMAGES

DEFAULT_IMAGE = "nvcr.io/nvidia/tensorrt"
DEFAULT_TIMEOUT_S = 3600.0      # per step: TensorRT builds of large models and INT8 calibration take minutes


@dataclass(frozen=True)
class GpuRequest:
    mode: str                  # "auto" | "all" | "none" | "ids"
    ids: tuple[str, ...] = ()


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
    force: bool = False
    sample_data: Path | None = None
    calib_data: Path | None = None
    atol: float | None = None
    workspace: int | None = None
    opset: int = 17
    bench: dict | None = None
    seed: int = 0
    trust_model: bool = False
    memory: int | None = None          # bytes; None: 3/4 of the Docker host's memory
    timeout: float = DEFAULT_TIMEOUT_S

    def data_files(self) -> dict[str, tuple[str, Path]]:
        """role -> (container path, host path) of the user's data files."""
        return {role: (f"{contract.DATA_DIR}/{role}{path.suffix}", path.absolute())
                for role, path in (("sample", self.sample_data), ("calib", self.calib_data)) if path is not None}

    def container_plan(self, target: str, mode: str = "build") -> dict:
        """plan.json for scripts/pipeline.py; mode is build, inspect or bench (artifacts already there)."""
        data = {role: container_path for role, (container_path, _) in self.data_files().items()}
        return {
            "model": f"{contract.MODEL_DIR}/{self.model.path.name}",
            "model_format": self.model.format,
            "trust_model": self.trust_model,
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
            "cache_dir": f"{contract.WORK}/{contract.CACHE}",
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
            "seed": self.seed, "trust_model": self.trust_model, "memory": self.memory, "timeout": self.timeout,
        }
