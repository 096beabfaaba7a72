"""Finished builds kept by content: a build whose inputs match one that finished is reused, not redone.

The key covers what decides the artifacts: the model's bytes, the data files' bytes, the image and
toolchain ids, the target, the options that reach the container (but those only TensorRT reads), trtkit's
version and its step scripts' bytes (a development tree changes them under one version). ONNX and
frozen-graph builds give byte-identical artifacts for the same key (tests/test_build.py), so reusing one
equals redoing it. Engines are always built (they depend on the GPU and on TensorRT's timing, which the
key cannot see), and so are builds with --bench (timings are measurements). `--force` rebuilds.
"""
import hashlib
import json
import shutil
from pathlib import Path

from . import __version__, resources
from .exported import MANIFEST_NAME
from .modelfile import sha256_of
from .plan import BuildPlan
from .staging import replace_folder
from .targets import unshaped_keys
from .toolchain import Toolchain, cache_dir

REUSABLE_TARGETS = ("onnx", "frozen")
# The host's options that do not change the artifacts: where they go, how the box is limited, GPUs (no engine
# here). Every build option enters the key where it shapes the target, a data file by its bytes, not its path.
NOT_IN_KEY = ("target", "gpus", "memory", "timeout", "triton_repo")


def key(plan: BuildPlan, target: str, toolchain: Toolchain) -> str | None:
    """The build's content key, or None when such a build is never reused."""
    if target not in REUSABLE_TARGETS or plan.bench:
        return None
    # Options and data files only TensorRT reads leave an ONNX or frozen build as it is (targets.unused_options
    # warns of them there), so a matrix's precisions share one such build.
    unshaped = unshaped_keys(target)
    data = plan.data_files()
    material = {
        "trtkit": __version__, "steps": resources.steps_digest(), "model": plan.model.sha256, "target": target,
        "image": toolchain.base_id, "toolchain": toolchain.image_id,
        "data": {key: sha256_of(path) for key, (_, path) in data.items() if key not in unshaped},
        "options": {k: v for k, v in plan.options().items()
                    if k not in NOT_IN_KEY and k not in unshaped and k not in data},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _root() -> Path:
    return cache_dir() / "builds"


def find(build_key: str) -> Path | None:
    folder = _root() / build_key
    return folder if (folder / MANIFEST_NAME).is_file() else None


def _copy_files(source: Path, dest: Path) -> None:
    """An output's regular files (an ONNX or frozen output has no folders), never through a link."""
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.is_symlink():
            shutil.copy2(path, dest / path.name)


def restore(folder: Path, dest: Path) -> dict:
    """The finished build's files into dest; its manifest."""
    _copy_files(folder, dest)
    return json.loads((dest / MANIFEST_NAME).read_text())


def keep(output: Path, build_key: str) -> None:
    """A copy of a finished output under its key: the newest build of that key (after --force too)."""
    try:
        replace_folder(_root() / build_key, lambda new: _copy_files(output, new))
    except OSError:
        pass        # a cache that cannot be written costs only a rebuild
