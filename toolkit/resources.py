"""Files trtkit sends into containers: the step scripts, Polygraphy, and the toolchain Dockerfile."""
import functools
import hashlib
import importlib.util
from pathlib import Path

_PACKAGED = Path(__file__).parent / "_resources"   # inside an installed wheel
_CHECKOUT = Path(__file__).resolve().parents[1]    # an editable install / the repo


def _root() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def scripts_dir() -> Path:
    return _root() / "scripts"


@functools.cache
def steps_digest(root: Path | None = None) -> str:
    """sha256 over the step scripts' names and bytes (root: scripts_dir()). They make the artifacts, and they
    change between builds of one trtkit version while it is developed."""
    root = root or scripts_dir()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def toolchain_dir() -> Path:
    return _root() / "images" / "toolchain"


def polygraphy_dir() -> Path:
    """The installed Polygraphy package (a pinned dependency), found without importing it."""
    spec = importlib.util.find_spec("polygraphy")
    assert spec is not None and spec.submodule_search_locations, "polygraphy is a dependency of trtkit"
    return Path(list(spec.submodule_search_locations)[0])


def runtime_dir() -> Path:
    """The package trtkit.runtime, which the engine steps and the bench import in the container as trtkit_runtime."""
    return Path(__file__).parent / "runtime"
