"""BuildPlan: the validated options of one build, and the plan.json the container receives.

Pure logic (no Docker). Parsing of the command line lives in options.py, the
choice of target in targets.py; what the container sees, and where, is in the
contract (scripts/trtkit_steps/contract.py).
"""
from dataclasses import dataclass, field
from pathlib import Path

from .contract import contract
from .modelfile import ModelRef

DEFAULT_IMAGE = "nvcr.io/nvidia/tensorrt"
DEFAULT_TIMEOUT_S = 3600.0      # per step: TensorRT builds of large models and INT8 calibration take minutes


# The user's data files: their role (their name in the box) -> the BuildPlan field that names them.
DATA_FIELDS = {"sample": "sample_data", "calib": "calib_data", "timing": "timing_cache"}


@dataclass(frozen=True)
class GpuRequest:
    mode: str                  # "auto" | "all" | "none" | "ids"
    ids: tuple[str, ...] = ()


@dataclass
class BuildPlan:
    model: ModelRef
    image: str
    target: str | None = None
    precision: str = "fp32"
    tf32: bool = False
    shapes: dict = field(default_factory=dict)
    gpus: GpuRequest = GpuRequest("auto")
    out_dir: Path | None = None        # None: ./trtkit-out/<model name>
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
    disabled_tactic_sources: tuple[str, ...] | None = None    # None: TensorRT's default tactic sources
    triton_repo: Path | None = None            # also write the artifact into this Triton model repository
    locked: Path | None = None                 # the lock file a --locked build must match
    timing_cache: Path | None = None           # a TensorRT timing cache to replay (an earlier build's timing.cache)
    strict_timing_cache: bool = False          # a tactic missing from timing_cache fails the build
    typical_batch: int | None = None           # the profile's OPT batch where --shapes does not say
    exact_batches: tuple[int, ...] = ()        # batch sizes that get a profile of their own, beside the full range
    optimization_level: int = 3                # TensorRT's builder optimisation level (8.6 and newer)
    unroll_lstm: bool = False                  # the ONNX export unrolls fixed-length LSTMs (trtkit_steps/onnx_lstm.py)
    io_precision: str = "fp32"                 # of the engine's float inputs and outputs: fp16 halves their bytes

    def data_files(self) -> dict[str, tuple[str, Path]]:
        """role -> (container path, host path) of the user's data files."""
        return {role: (f"{contract.DATA_DIR}/{role}{path.suffix}", path.absolute())
                for role, field in DATA_FIELDS.items() if (path := getattr(self, field)) is not None}

    def container_plan(self, target: str, mode: str = "build") -> dict:
        """plan.json for scripts/pipeline.py; mode is one of contract.MODES."""
        data = {role: container_path for role, (container_path, _) in self.data_files().items()}
        return {
            "model": contract.model_path(self.model.format, self.model.path.name),
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
            "disabled_tactic_sources": list(self.disabled_tactic_sources) if self.disabled_tactic_sources else None,
            "timing_cache": data.get("timing"),
            **self._build_settings(),
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
            "disabled_tactic_sources": list(self.disabled_tactic_sources or []),
            "triton_repo": str(self.triton_repo) if self.triton_repo else None,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
            **self._build_settings(),
        }

    def _build_settings(self) -> dict:
        """The settings that plan.json and the manifest's options hold alike."""
        return {
            "strict_timing_cache": self.strict_timing_cache,
            "typical_batch": self.typical_batch,
            "exact_batches": list(self.exact_batches),
            "optimization_level": self.optimization_level,
            "unroll_lstm": self.unroll_lstm,
            "io_precision": self.io_precision,
        }
