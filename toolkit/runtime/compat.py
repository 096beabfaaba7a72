"""Where the engine was built (trtkit.json beside it) and where it would run: whether it can load here.

Python 3.8+ and the standard library only (no numpy): `trtkit check` imports it on hosts without numpy.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass

__all__ = ["MANIFEST_NAME", "PLAN_NAME", "MIN_TENSORRT", "IncompatibleEngine", "Host", "Built", "Manifest", "locate",
           "read_manifest", "load_manifest", "check_plan_digest", "tensorrt_release", "require_supported_tensorrt",
           "compatibility", "tensorrt_mismatch", "capability_mismatch", "tuned_elsewhere", "placement",
           "build_source", "rebuild_command", "image_arguments"]

MANIFEST_NAME = "trtkit.json"
PLAN_NAME = "model.plan"
MIN_TENSORRT = (8, 6)         # the name-based tensor API (set_input_shape, execute_async_v3) as tested


class IncompatibleEngine(RuntimeError):
    """The engine cannot run here; the message says what to rebuild or install."""


# --- where the engine was built, and where it would run ---------------------

@dataclass(frozen=True)
class Host:
    """Where the engine would run: TensorRT's version, the GPU and its compute capability ("9.0")."""
    tensorrt: str
    gpu: str
    compute_capability: str


@dataclass(frozen=True)
class Built(Host):
    """Where trtkit built the engine (trtkit.json), and how to build it again."""
    source: str      # what `trtkit build` took: the model, or the earlier output folder it continued
    image: str       # the image it was built in


@dataclass(frozen=True)
class Manifest:
    built: Built
    names: dict              # trtkit.json's "names": inputs and outputs with their Keras tensors
    plan_sha256: str | None  # the engine's digest, when recorded


def locate(path: str) -> tuple[str, str | None]:
    """(the plan, the trtkit.json that describes it or None) for an output folder or a .plan file."""
    if os.path.isdir(path):
        plan = os.path.join(path, PLAN_NAME)
        if not os.path.isfile(plan):
            raise FileNotFoundError(f"{path} has no {PLAN_NAME}: give the output folder of "
                                    "`trtkit build --target engine`, or a .plan file")
    elif os.path.isfile(path):
        plan = path
    else:
        raise FileNotFoundError(f"no engine at {path}")
    manifest = os.path.join(os.path.dirname(os.path.abspath(plan)), MANIFEST_NAME)
    return plan, manifest if os.path.isfile(manifest) else None


def read_manifest(path: str, plan_name: str) -> Manifest | None:
    """The engine's record in trtkit.json; None when that manifest lists no engine of this plan's name."""
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as e:  # JSONDecodeError and undecodable bytes alike
        raise IncompatibleEngine(f"{path} is not a trtkit manifest ({e})") from None
    if not isinstance(manifest, dict):
        raise IncompatibleEngine(f"{path} is not a trtkit manifest (not a JSON object)")
    artifact = next((a for a in manifest.get("artifacts") or [] if a.get("name") == plan_name), None)
    if artifact is None or artifact.get("kind") != "engine":
        return None
    engine = manifest.get("engine")
    if not isinstance(engine, dict) or not all(isinstance(engine.get(k), str)
                                               for k in ("tensorrt", "gpu", "compute_capability")):
        raise IncompatibleEngine(f"{path} lacks the engine's TensorRT version and GPU")
    image = (manifest.get("image") or {}).get("reference", "IMAGE")
    built = Built(engine["tensorrt"], engine["gpu"], engine["compute_capability"], build_source(manifest), image)
    return Manifest(built, manifest.get("names") or {}, artifact.get("sha256"))


def load_manifest(path: str | None, plan_name: str, check: bool) -> Manifest | None:
    """read_manifest; with check off, a manifest it cannot use is ignored with a warning (the engine then goes
    by its own tensor names), as check=False promises to load the engine unchecked."""
    if path is None:
        return None
    try:
        return read_manifest(path, plan_name)
    except (OSError, IncompatibleEngine) as e:
        if check:
            raise
        warnings.warn(f"trtkit.runtime: {e}; check=False, so the engine loads by its own names", RuntimeWarning,
                      stacklevel=3)
        return None


def check_plan_digest(plan: bytes, manifest: Manifest, plan_path: str) -> None:
    """The plan must be the engine the manifest describes, or the manifest's checks say nothing about it."""
    if manifest.plan_sha256 and hashlib.sha256(plan).hexdigest() != manifest.plan_sha256:
        raise IncompatibleEngine(f"{plan_path} is not the engine {MANIFEST_NAME} beside it describes (its sha256 "
                                 "differs): it was changed or damaged since the build; rebuild it, or pass "
                                 "check=False to load it unchecked")


def tensorrt_release(version: str) -> tuple[int, int, int]:
    """(major, minor, patch): "8.6.1", "8.6.1.6" (older Python packages) and trtexec's "8.6.1" agree."""
    parts = [int(m.group()) if m else 0 for m in (re.match(r"\d+", p) for p in version.split(".")[:3])]
    major, minor, patch = (parts + [0, 0, 0])[:3]
    return major, minor, patch


def require_supported_tensorrt(version: str) -> None:
    if tensorrt_release(version)[:2] < MIN_TENSORRT:
        raise IncompatibleEngine(f"trtkit.runtime needs TensorRT {MIN_TENSORRT[0]}.{MIN_TENSORRT[1]} or newer "
                                 f"(set_input_shape, execute_async_v3); this host has {version}")


def compatibility(built: Built, here: Host) -> str | None:
    """Raises IncompatibleEngine when the engine cannot load here; else a warning, or None when it runs as built."""
    where = placement(built, here)
    mismatch = tensorrt_mismatch(built.tensorrt, here.tensorrt, "this host")
    if mismatch:
        raise IncompatibleEngine(
            f"the engine cannot load here: {mismatch} ({where}). Install TensorRT {built.tensorrt} here (pip install "
            f"'tensorrt=={'.'.join(map(str, tensorrt_release(built.tensorrt)))}.*'), or rebuild it with an image "
            f"whose TensorRT is {here.tensorrt}: "
            f"{rebuild_command(built.source, ['--image', 'REPO', '--tag', f'<a tag with TensorRT {here.tensorrt}>'])}")
    mismatch = capability_mismatch(built.compute_capability, here.compute_capability, "this GPU")
    if mismatch:
        raise IncompatibleEngine(f"the engine cannot load here: {mismatch} ({where}). Rebuild it on this GPU: "
                                 f"{rebuild_command(built.source, image_arguments(built.image))}")
    tuned = tuned_elsewhere(built, here)
    if tuned:
        return (f"the engine loads here, but {tuned}: rebuild on this GPU for its best speed: "
                f"{rebuild_command(built.source, image_arguments(built.image))}")
    return None


# The rule `trtkit check` shares: what it says before deployment, the runtime says when the engine loads.

def tensorrt_mismatch(built: str, here: str | None, where: str) -> str | None:
    """Why an engine TensorRT `built` made cannot load where TensorRT `here` is (None: no TensorRT there), or None.
    An engine loads only with the release that built it: "8.6.1", "8.6.1.6" and trtexec's "8.6.1" are one."""
    if not here:
        return f"{where} has no TensorRT"
    if tensorrt_release(built) != tensorrt_release(here):
        return f"it was built with TensorRT {built} and {where} has TensorRT {here}"
    return None


def capability_mismatch(built: str, here: str, where: str) -> str | None:
    """Why an engine built for compute capability `built` cannot run on `here`, or None: it holds kernels for one."""
    return f"it was built for sm {built} and {where} is sm {here}" if built != here else None


def tuned_elsewhere(built: Host, here: Host) -> str | None:
    """Another GPU model of the same capability runs the engine, with kernels chosen on the one that built it."""
    if built.gpu == here.gpu:
        return None
    return f"it was tuned on {built.gpu} (sm {built.compute_capability}), not {here.gpu}"


def placement(built: Host, here: Host) -> str:
    return (f"built with TensorRT {built.tensorrt} on {built.gpu}, sm {built.compute_capability}; "
            f"here TensorRT {here.tensorrt} on {here.gpu}, sm {here.compute_capability}")


def build_source(manifest: dict) -> str:
    """What `trtkit build` took for this output: the earlier output folder it continued, else the model."""
    for key in ("earlier_build", "model"):
        record = manifest.get(key)
        if isinstance(record, dict) and isinstance(record.get("path"), str):
            return record["path"]
    return "MODEL"


def rebuild_command(source: str, image_arguments: list[str]) -> str:
    return f"trtkit build {source} --target engine {' '.join(image_arguments)} --gpus all"


def image_arguments(image: str) -> list[str]:
    """How trtkit build names an image: --image REPO --tag TAG (the tag holds no ':', a registry's port may), or
    --image REPO@sha256:... (pinned). reproduce.sh, trtkit lock and trtkit check spell images with it too."""
    repository, colon, tag = image.rpartition(":")
    if "@" in image or not colon or "/" in tag:
        return ["--image", image]
    return ["--image", repository, "--tag", tag]
