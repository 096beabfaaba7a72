"""Files trtkit sends into containers: the step scripts and the toolchain Dockerfile."""
from pathlib import Path

_PACKAGED = Path(__file__).parent / "_resources"   # inside an installed wheel
_CHECKOUT = Path(__file__).resolve().parents[1]    # an editable install / the repo


def _root() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def scripts_dir() -> Path:
    return _root() / "scripts"


def toolchain_dir() -> Path:
    return _root() / "images" / "toolchain"
