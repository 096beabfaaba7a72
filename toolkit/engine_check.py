"""`trtkit check OUT`: can this host load OUT's engine? Answered before deployment, without running it.

An engine loads only with the TensorRT version it was built with, and runs best (often only) on the GPU
model it was built for. The manifest records both; the deployment image is probed for its TensorRT
(no GPU needed, so a version mismatch is found anywhere), then a container with the GPU deserializes the
engine. The answer says what to rebuild when the engine cannot load.
"""
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidModel, TargetUnsupported
from .exported import MANIFEST_NAME, check_plain, manifest_field
from .options import image_arguments


@dataclass(frozen=True)
class EngineRecord:
    """Where an engine was built (the manifest's record) or where it would run (the check's findings)."""
    tensorrt: str
    gpu: str | None
    compute_capability: str | None


def recorded(out_dir: Path, manifest: dict) -> EngineRecord:
    engine = manifest.get("engine")
    if manifest_field(manifest, out_dir / MANIFEST_NAME, "target.chosen") != "engine" or not isinstance(engine, dict):
        raise InvalidModel(f"{out_dir / MANIFEST_NAME} records no engine build: trtkit check takes the output "
                           "folder of `trtkit build --target engine`")
    check_plain(out_dir / "model.plan", folder=False)
    if not all(isinstance(engine.get(k), str) for k in ("tensorrt", "gpu", "compute_capability")):
        raise InvalidModel(f"{out_dir / MANIFEST_NAME} lacks the engine's TensorRT version and GPU")
    return EngineRecord(engine["tensorrt"], engine["gpu"], engine["compute_capability"])


def rebuild_hint(out_dir: Path, manifest: dict, image: str) -> str:
    earlier = manifest.get("earlier_build")
    source = (earlier.get("path") if isinstance(earlier, dict) else None) or manifest["model"]["path"]
    return f"rebuild here: trtkit build {source} --target engine {' '.join(image_arguments(image))} --gpus all"


def version_mismatch(built: EngineRecord, tensorrt_here: str | None) -> str | None:
    """Why the engine cannot load in an image, known without a GPU; None when the versions agree."""
    if not tensorrt_here:
        return "the image has no TensorRT"
    if tensorrt_here != built.tensorrt:
        return f"it was built with TensorRT {built.tensorrt} and the image has TensorRT {tensorrt_here}"
    return None


def verdict(built: EngineRecord, here: EngineRecord, error: str | None) -> str:
    """One line: loads (and whether the GPU is the one it was tuned for), or why not. Raises when it cannot."""
    if error:
        raise TargetUnsupported(f"the engine cannot load here: {error} (built with TensorRT {built.tensorrt} on "
                                f"{built.gpu}, sm {built.compute_capability}; here TensorRT {here.tensorrt} on "
                                f"{here.gpu}, sm {here.compute_capability})")
    if here.gpu != built.gpu:
        return (f"loads here, but it was tuned on {built.gpu} (sm {built.compute_capability}), not {here.gpu}: "
                "rebuild on this GPU for its best speed")
    return f"loads here: TensorRT {here.tensorrt} on {here.gpu} (sm {here.compute_capability}), as built"
