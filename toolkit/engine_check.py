"""`trtkit check OUT`: can this host load OUT's engine? Answered before deployment, without running it.

An engine loads only with the TensorRT version it was built with, and runs best (often only) on the GPU
model it was built for. The manifest records both; the deployment image is probed for its TensorRT
(no GPU needed, so a version mismatch is found anywhere), then a container with the GPU deserializes the
engine. The answer says what to rebuild when the engine cannot load.
"""
from pathlib import Path

from .errors import InvalidModel, TargetUnsupported
from .exported import MANIFEST_NAME, check_plain, manifest_field
from .runtime.compat import (
    PLAN_NAME,
    Host,
    build_source,
    image_arguments,
    placement,
    rebuild_command,
    tensorrt_mismatch,
    tuned_elsewhere,
)

# Where an engine was built (the manifest's record) or where it would run (the check's findings): the runtime's
# own record, judged by the runtime's own rule (trtkit.runtime.compat, which needs no numpy).
EngineRecord = Host


def recorded(out_dir: Path, manifest: dict) -> EngineRecord:
    engine = manifest.get("engine")
    if manifest_field(manifest, out_dir / MANIFEST_NAME, "target.chosen") != "engine" or not isinstance(engine, dict):
        raise InvalidModel(f"{out_dir / MANIFEST_NAME} records no engine build: trtkit check takes the output "
                           "folder of `trtkit build --target engine`")
    check_plain(out_dir / PLAN_NAME, folder=False)
    if not all(isinstance(engine.get(k), str) for k in ("tensorrt", "gpu", "compute_capability")):
        raise InvalidModel(f"{out_dir / MANIFEST_NAME} lacks the engine's TensorRT version and GPU")
    return EngineRecord(engine["tensorrt"], engine["gpu"], engine["compute_capability"])


def rebuild_hint(out_dir: Path, manifest: dict, image: str) -> str:
    return f"rebuild here: {rebuild_command(build_source(manifest), image_arguments(image))}"


def version_mismatch(built: EngineRecord, tensorrt_here: str | None) -> str | None:
    """Why the engine cannot load in an image, known without a GPU; None when the releases agree."""
    return tensorrt_mismatch(built.tensorrt, tensorrt_here, "the image")


def verdict(built: EngineRecord, here: EngineRecord, error: str | None) -> str:
    """One line: loads (and whether the GPU is the one it was tuned for), or why not. Raises when it cannot. Whether
    this GPU takes the engine is what TensorRT said on it (`error`), not a comparison of compute capabilities."""
    why = tensorrt_mismatch(built.tensorrt, here.tensorrt, "the image") or error
    if why:
        raise TargetUnsupported(f"the engine cannot load here: {why} ({placement(built, here)})")
    tuned = tuned_elsewhere(built, here)
    if tuned:
        return f"loads here, but {tuned}: rebuild on this GPU for its best speed"
    return f"loads here: TensorRT {here.tensorrt} on {here.gpu} (sm {here.compute_capability}), as built"
