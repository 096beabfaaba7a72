"""trtkit.json: everything needed to trust, reproduce and audit a build."""
import datetime
import json
import time
from pathlib import Path
from typing import Any, TypedDict

from . import __version__
from .events import BenchResult, BuildRecord, ExportRoute, Names, StepTime, Verification, Warning_
from .exported import MANIFEST_NAME, EarlierBuildRecord
from .modelfile import sha256_of, size_of
from .plan import BuildPlan
from .targets import TargetChoice
from .toolchain import Toolchain


class ModelRecord(TypedDict):
    path: str
    format: str
    sha256: str
    params: int | None


class ImageRecord(TypedDict):
    reference: str
    id: str
    repo_digests: list[str]
    toolchain: str
    toolchain_id: str


class TargetRecord(TypedDict):
    chosen: str
    reason: str


class ArtifactRecord(TypedDict, total=False):
    name: str
    kind: str
    bytes: int
    sha256: str        # and what the step said about it (ops, opset, inputs, ...)


class Manifest(TypedDict):
    trtkit_version: str
    created: str
    model: ModelRecord
    image: ImageRecord
    options: dict[str, Any]
    target: TargetRecord
    versions: dict[str, str]
    names: Names | None
    steps: list[StepTime]
    verification: list[Verification]
    artifacts: list[ArtifactRecord]
    export: ExportRoute | None   # how the ONNX model was made (None: no export ran, or a trtkit before 2026-12)
    warnings: list[Warning_]
    engine: dict[str, Any] | None
    precision: dict[str, Any] | None     # --precision fp16 / int8: the rewritten ONNX, what stayed FP32, the recipe
    bench: BenchResult | None
    earlier_build: EarlierBuildRecord | None
    build_key: str | None        # the content key of a reusable build (toolkit/build_cache.py)
    reused_from: str | None      # when the artifacts were copied from a finished build: that build's time
    total_seconds: float


def make(plan: BuildPlan, choice: TargetChoice, toolchain: Toolchain, record: BuildRecord, result_dir: Path,
         started: float, earlier: EarlierBuildRecord | None = None, build_key: str | None = None) -> Manifest:
    """The manifest; `earlier` links a two-stage build to the build whose output it continued."""
    manifest: Manifest = {
        "trtkit_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"path": str(plan.model.path), "format": plan.model.format, "sha256": plan.model.sha256,
                  "params": record.names["params"] if record.names else None},
        "image": {"reference": plan.image, "id": toolchain.base_id, "repo_digests": toolchain.base_digests,
                  "toolchain": toolchain.tag, "toolchain_id": toolchain.image_id},
        "options": plan.options(),
        "target": {"chosen": choice.target, "reason": choice.reason},
        "versions": {**{k: v for k, v in toolchain.probe.items() if isinstance(v, str)}, **record.versions},
        "names": record.names,
        "steps": record.steps,
        "verification": record.verification,
        "artifacts": [_describe(result_dir / a["name"], a) for a in record.artifacts],
        "export": record.export,
        "warnings": record.warnings,
        "engine": record.engine if choice.target == "engine" else None,   # only an engine build makes one
        "precision": record.precision,
        "bench": record.bench,
        "earlier_build": earlier,
        "build_key": build_key,
        "reused_from": None,
        "total_seconds": round(time.time() - started, 3),
    }
    write(manifest, result_dir)
    return manifest


def reused(finished: Manifest, plan: BuildPlan, choice: TargetChoice, result_dir: Path, started: float) -> Manifest:
    """A finished build's manifest for this request: what was done (artifacts, checks, steps) is that build's;
    what was asked (the model's path, the image's reference, options, the target's reason) and when are this one's:
    the key holds the model's bytes and the image's id, not their names."""
    manifest: Manifest = {**finished, "model": {**finished["model"], "path": str(plan.model.path),
                                                "format": plan.model.format},
                          "image": {**finished["image"], "reference": plan.image},
                          "options": plan.options(), "target": {"chosen": choice.target,
                          "reason": choice.reason}, "reused_from": finished["created"],
                          "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          "total_seconds": round(time.time() - started, 3)}
    write(manifest, result_dir)
    return manifest


def write(manifest: Manifest, result_dir: Path) -> None:
    (result_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _describe(path: Path, event: dict) -> ArtifactRecord:
    return {**event, "bytes": size_of(path), "sha256": sha256_of(path)}  # type: ignore[typeddict-item]
