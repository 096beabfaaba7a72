"""--out: what may be replaced, the lock against a concurrent build, and atomic publication.

A build writes into a folder made beside --out, on the same file system, and
publishes with two renames: a failed or interrupted build leaves --out as it
was. An existing --out is replaced only when it is a previous trtkit output
(its trtkit.json and nothing but the files that manifest lists plus the
reports), or with --force; never when it is, or holds, the model, the current
folder, $HOME or trtkit's cache. A symlinked --out is followed.
"""
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputNotWritable
from .manifest import MANIFEST_NAME
from .report import REPORT_FILES
from .reproduce import SCRIPT_NAME


def protected_paths(model: Path | None, cache: Path) -> dict[str, Path]:
    places = {"the current folder": Path.cwd(), "your home folder": Path.home(), "trtkit's cache": cache}
    if model is not None:
        places["the model"] = model
    return {what: path.resolve() for what, path in places.items()}


def refuse_protected(out_dir: Path, protected: dict[str, Path]) -> None:
    """--out may never be, or hold, these; nor lie inside the model (a SavedModel folder); nor be a top-level
    folder or a mount point (`--out /usr --force` is a typo, not a wish)."""
    if len(out_dir.parts) <= 2 or os.path.ismount(out_dir):
        raise OutputNotWritable(f"refusing to write the output folder {out_dir}: a top-level folder or a mount "
                                "point is never replaced", hint="choose a folder inside it")
    for what, path in protected.items():
        if path == out_dir or out_dir in path.parents or (what == "the model" and path in out_dir.parents):
            raise OutputNotWritable(f"refusing to write the output folder {out_dir}: replacing it would "
                                    f"delete {what} ({path})", hint="choose another --out")


def foreign_entries(out_dir: Path) -> list[str]:
    """What in an existing --out trtkit did not write: [] for a previous trtkit output."""
    try:
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text())
        listed = {a["name"] for a in manifest["artifacts"]} | {MANIFEST_NAME, SCRIPT_NAME, *REPORT_FILES}
    except (OSError, ValueError, TypeError, KeyError):
        listed = set()
    return sorted(p.name for p in out_dir.iterdir()
                  if p.name not in listed or p.is_symlink() or not (p.is_file() or p.is_dir()))


class OutputLock:
    """An exclusive lock file beside --out, held for the whole build; a second build fails at once."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.path = out_dir.parent / f".{out_dir.name}.trtkit.lock"
        while True:
            self.fd = self._open()
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(self.fd)
                raise OutputNotWritable(f"another trtkit build (pid {holder}) is writing {out_dir}",
                                        hint="wait for it, or choose another --out") from None
            if self._still_ours():
                break
            os.close(self.fd)   # the previous holder removed the file between our open and lock: retry
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise _not_writable(self.out_dir, e) from None

    def _still_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        os.unlink(self.path)     # while still locked: a waiter that opened it sees a stale inode and retries
        os.close(self.fd)


class Staging:
    def __init__(self, out_dir: Path, force: bool, protected: dict[str, Path]):
        self.out_dir = out_dir.expanduser().resolve()       # follows a symlinked --out to its folder
        refuse_protected(self.out_dir, protected)
        self.published = False
        self.made_parents = [p for p in self.out_dir.parents if not p.exists()]   # innermost first
        try:
            self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _not_writable(self.out_dir, e) from None
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise OutputNotWritable(f"cannot write the output folder {self.out_dir}: a file is in the way")
        self.force = force
        self.lock = OutputLock(self.out_dir)
        try:
            self._check_replaceable()
            self.root = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.trtkit-", dir=self.out_dir.parent))
        except BaseException:
            self.lock.release()
            self._remove_made_parents()
            raise
        self.result = self.root / "result"      # becomes --out
        self.result.mkdir()

    def _check_replaceable(self) -> None:
        if self.force or not self.out_dir.is_dir():
            return
        foreign = foreign_entries(self.out_dir)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise OutputNotWritable(f"the output folder {self.out_dir} holds files trtkit did not write ({shown})",
                                    hint="choose another --out, or add --force to replace it anyway")

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.lock.release()
        if not self.published:
            self._remove_made_parents()

    def _remove_made_parents(self) -> None:
        """The folders above --out that this build made, when it failed: only while they are empty."""
        for folder in self.made_parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (someone else's now), or gone
                return

    @contextmanager
    def writing(self):
        """Writes into the result folder: an OSError (a full disk) becomes one line, exit 16."""
        try:
            yield self.result
        except OSError as e:
            raise _not_writable(self.out_dir, e) from None

    def publish(self) -> Path:
        """Swap the result folder in for --out in two renames (under the lock)."""
        self._check_replaceable()       # the user may have added files to --out since the build began
        previous = self.root / "previous"
        try:
            if self.out_dir.exists():
                os.rename(self.out_dir, previous)
            os.rename(self.result, self.out_dir)
        except OSError as e:
            if previous.exists() and not self.out_dir.exists():
                os.rename(previous, self.out_dir)   # the earlier output back where it was, not deleted with root
            raise _not_writable(self.out_dir, e) from None
        self.published = True
        return self.out_dir


def replace_folder(dest: Path, fill: Callable[[Path], None]) -> None:
    """dest made anew: filled in a folder beside it, then swapped in for the old one, which is moved aside whole
    and removed only after, so never half there. An OSError propagates with the old dest back in its place, and
    nothing is left beside dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{dest.name}.trtkit-", dir=dest.parent))
    old = new.with_name(new.name + ".old")
    try:
        fill(new)
        if dest.is_symlink() or dest.exists():
            os.rename(dest, old)
        try:
            os.rename(new, dest)
        except OSError:
            if old.is_symlink() or old.exists():
                os.rename(old, dest)
            raise
    finally:
        shutil.rmtree(new, ignore_errors=True)
        if old.is_symlink() or not old.is_dir():
            old.unlink(missing_ok=True)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _not_writable(out_dir: Path, error: OSError) -> OutputNotWritable:
    if error.errno == errno.ENOSPC:
        return OutputNotWritable(f"no space left on the device of {out_dir}: nothing was written",
                                 hint="free some space, or choose another --out")
    return OutputNotWritable(f"cannot write the output folder {out_dir}: {error.strerror or error}")


