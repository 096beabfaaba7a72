"""Files that appear whole or not at all: written beside their place, then renamed over it."""
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import OutputNotWritable


def write_atomically(path: Path, write: Callable[[BinaryIO], object], mode: int = 0o644) -> None:
    """write(f) fills a file beside path, which then replaces path in one rename; on any failure, Ctrl-C
    included, neither a half-written file nor the temporary one is left. OSError: OutputNotWritable."""
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise OutputNotWritable(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, mode)     # not mkstemp's 0600: these files are for other users and hosts too
        with open(fd, "wb") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException as e:
        os.unlink(temporary)
        if isinstance(e, OSError):
            raise OutputNotWritable(f"cannot write {path}: {e.strerror or e}") from None
        raise
