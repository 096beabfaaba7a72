"""BuildPlan: the validated options of one build, and the plan.json the container receives.

Pure logic (no Docker). The build options the contract declares (contract.BUILD_OPTIONS) are the plan's
settings, by their plan.json key; the command line makes them (build_options.py), the choice of target is
in targets.py, and what the container sees, and where, is in the contract (scripts/trtkit_steps/contract.py).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtkit_steps import contract

from .modelfile import ModelRef

DEFAULT_IMAGE = "nvcr.io/nvidia/tensorrt"
DEFAULT_TIMEOUT_S = 3600.0      # per step: TensorRT builds of large models and INT8 calibration take minutes
DATA_OPTIONS = tuple(option for option in contract.BUILD_OPTIONS if option.kind == "data")


@dataclass(frozen=True)
class GpuRequest:
    mode: str                  # "auto" | "all" | "none" | "ids"
    ids: tuple[str, ...] = ()


@dataclass
class BuildPlan:
    model: ModelRef
    image: str
    target: str | None = None
    gpus: GpuRequest = GpuRequest("auto")
    out_dir: Path | None = None        # None: ./trtkit-out/<model name>
    force: bool = False
    bench: dict | None = None
    trust_model: bool = False
    memory: int | None = None          # bytes; None: 3/4 of the Docker host's memory
    timeout: float = DEFAULT_TIMEOUT_S
    triton_repo: Path | None = None            # also write the artifact into this Triton model repository
    locked: Path | None = None                 # the lock file a --locked build must match
    # contract.BUILD_OPTIONS by key (a data file's value is its host Path); the rest get their defaults
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.settings) - set(contract.OPTIONS_BY_KEY))
        if unknown:     # a caller's typo would otherwise build with the default
            raise TypeError(f"unknown build settings {unknown}")
        self.settings = {**contract.option_defaults(), **self.settings}

    def data_files(self) -> dict[str, tuple[str, Path]]:
        """key -> (container path, host path) of the user's data files."""
        return {option.key: (contract.data_path(option, path.suffix), path.absolute())
                for option in DATA_OPTIONS if (path := self.settings[option.key]) is not None}

    def container_plan(self, target: str, mode: str = "build") -> dict:
        """plan.json for scripts/pipeline.py; mode is one of contract.MODES."""
        data = {key: container_path for key, (container_path, _) in self.data_files().items()}
        return {
            "model": contract.model_path(self.model.format, self.model.path.name),
            "model_format": self.model.format,
            "trust_model": self.trust_model,
            "target": target,
            "mode": mode,
            "bench": self.bench,
            "cache_dir": f"{contract.WORK}/{contract.CACHE}",
            **self.settings,
            **{option.key: data.get(option.key) for option in DATA_OPTIONS},
        }

    def options(self) -> dict:
        """The options as recorded in the manifest."""
        return {
            "target": self.target, "gpus": self.gpus.mode if self.gpus.mode != "ids" else ",".join(self.gpus.ids),
            "bench": self.bench, "trust_model": self.trust_model, "memory": self.memory, "timeout": self.timeout,
            "triton_repo": str(self.triton_repo) if self.triton_repo else None,
            **self.settings,
            **{option.key: str(path) if (path := self.settings[option.key]) else None for option in DATA_OPTIONS},
        }
