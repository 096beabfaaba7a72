"""Files trtkit sends into containers: the step scripts, Polygraphy, and the toolchain Dockerfile."""
import importlib.util
from pathlib import Path

_PACKAGED = Path(__file__).parent / "_resources"   # inside an installed wheel
_CHECKOUT = Path(__file__).resolve().parents[1]    # an editable install / the repo


def _root() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def scripts_dir() -> Path:
    return _root() / "scripts"


def toolchain_dir() -> Path:
    return _root() / "images" / "toolchain"


def polygraphy_dir() -> Path:
    """The installed Polygraphy package (a pinned dependency), found without importing it."""
    spec = importlib.util.find_spec("polygraphy")
    assert spec is not None and spec.submodule_search_locations, "polygraphy is a dependency of trtkit"
    return Path(list(spec.submodule_search_locations)[0])


def runtime_files() -> list[Path]:
    """trtkit.runtime's modules, which the bench runs in the container as the package trtkit_runtime."""
    here = Path(__file__).parent
    return [here / "runtime.py", here / "runtime_cuda.py"]
