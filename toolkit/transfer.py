"""Files into and out of a build container, through the Docker API only.

In: one tar unpacked at contract.ROOT before the container starts (scripts,
the model, the user's data, the work folder). Out: get_archive streams, read
member by member. Nothing is extracted with tarfile's own extract: a member is
taken only when the caller's rule names it and it is a regular file (or, for
folder artifacts, a folder), below a size cap, and it is written with O_EXCL
into a folder trtkit just made. Links, devices, `..` and absolute names never
reach the disk, so a container cannot write anywhere through what it returns.
"""
import functools
import io
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from trtkit_steps import contract

from .errors import InvalidModel, OutputNotWritable, StepFailed
from .resources import polygraphy_dir, runtime_dir, scripts_dir

WRITABLE = 0o777     # the container's uid is not the files' owner (put_archive makes them root's)
SPOOL_BYTES = 64 << 20


def cache_not_writable(folder: Path, error: OSError) -> OutputNotWritable:
    """trtkit's own cache (the inputs' spool, TensorRT caches, evidence) could not be written: exit 16."""
    detail = f"{error.strerror}: {error.filename}" if error.strerror and error.filename else error.strerror or error
    return OutputNotWritable(f"cannot write trtkit's cache in {folder} ({detail})",
                             hint="free some space there, or set TRTKIT_CACHE to a folder on another disk")


def _spooling(method):
    """The inputs spool to disk past SPOOL_BYTES: a full or unwritable disk there is one line, exit 16."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as e:
            if e.filename and not Path(e.filename).is_relative_to(self.spool_dir):
                raise       # a source that cannot be read: not the spool's disk
            self.file.close()       # its space back now, not when the error is let go
            raise cache_not_writable(self.spool_dir, e) from None

    return wrapper


class Inputs:
    """A tar being assembled for contract.ROOT; spooled to disk past 64 MiB (models can be large).

    Every method takes the path the file will have in the container (a contract path).
    """

    def __init__(self, spool_dir: Path):
        self.spool_dir = spool_dir
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=str(spool_dir))
        self.tar = tarfile.open(fileobj=self.file, mode="w")

    def scripts(self) -> None:
        """trtkit's in-container scripts at contract.SCRIPTS, and beside them the Polygraphy trtkit pins (so
        first on the container's path, before any the image has) and trtkit.runtime as trtkit_runtime."""
        self.path(contract.SCRIPTS, scripts_dir())
        self.path(f"{contract.SCRIPTS}/polygraphy", polygraphy_dir())
        self.path(f"{contract.SCRIPTS}/trtkit_runtime", runtime_dir())

    @_spooling
    def folder(self, path: str, mode: int = 0o555) -> None:
        info = tarfile.TarInfo(_member(path))
        info.type, info.mode = tarfile.DIRTYPE, mode
        self.tar.addfile(info)

    @_spooling
    def data(self, path: str, payload: bytes) -> None:
        info = tarfile.TarInfo(_member(path))
        info.size, info.mode = len(payload), 0o444
        self.tar.addfile(info, io.BytesIO(payload))

    @_spooling
    def path(self, path: str, source: Path) -> None:
        """A host file or folder (recursively), read-only inside, as bytes: never a link.

        The path named is followed wherever it points: a model the user keeps behind a symlink is ordinary
        input, and a link sent as a link would dangle in the container and tell it a host path. Within a
        folder (a SavedModel) a link is sent as the file it names only when that is a regular file inside the
        folder: the folder may come from a stranger, and a link out of it (to ~/.ssh, say) would hand the
        container a host file nobody named. A link to a folder is refused too (it could loop).
        """
        root = source.resolve()
        self._add(_member(path), root, root)

    def _add(self, member: str, source: Path, root: Path) -> None:
        """source is never a link here: root is resolved, and _inside resolves the links below it."""
        if source.is_file():
            self.tar.add(str(source), arcname=member, filter=_read_only)
        elif source.is_dir():
            self.tar.add(str(source), arcname=member, recursive=False, filter=_read_only)
            for child in sorted(source.iterdir()):
                if child.name != "__pycache__":
                    self._add(f"{member}/{child.name}", _inside(child, root), root)
        else:
            raise InvalidModel(f"{source} is not a regular file or a folder: refused")

    @_spooling
    def finish(self) -> IO[bytes]:
        """The tar, from its start. While it fits in memory, as a copy there: requests asks a body for its
        fileno() to learn its size, which would spill the spooled file to disk (and fail on a full one)."""
        self.tar.close()
        size = self.file.tell()
        self.file.seek(0)
        if size > SPOOL_BYTES:
            return self.file        # on disk already
        with self.file:
            return io.BytesIO(self.file.read())


def _member(path: str) -> str:
    """A container path as a member of the tar put_archive unpacks at contract.ROOT."""
    root = contract.ROOT + "/"
    assert path.startswith(root), f"{path} is outside {contract.ROOT}"
    return path[len(root):]


def _inside(child: Path, root: Path) -> Path:
    """child, or the file a link there names when that is a regular file below root; else InvalidModel."""
    if not child.is_symlink():
        return child
    target = child.resolve()
    if target.is_relative_to(root) and target.is_file():
        return target
    raise InvalidModel(f"{child} is a link to {target}, not to a file inside {root}: refused",
                       hint="copy the file it points to into the folder")


def _read_only(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o555 if info.isdir() else 0o444
    return info


class _Capped(io.RawIOBase):
    """A file object over a chunk stream that refuses to read past `limit` bytes."""

    def __init__(self, chunks: Iterable[bytes], limit: int, what: str):
        self.chunks, self.limit, self.what = iter(chunks), limit, what
        self.buffer, self.total = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.total += len(chunk)
            if self.total > self.limit:
                raise StepFailed(f"the container returned more than {self.limit >> 20} MiB of {self.what}: refused")
            self.buffer = chunk
        n = min(len(target), len(self.buffer))
        target[:n], self.buffer = self.buffer[:n], self.buffer[n:]
        return n


# A rule gets (path inside the fetched folder, member) and says: take it (True), skip it (False),
# or raises StepFailed for a member that must not exist in that form.
Rule = Callable[[PurePosixPath, tarfile.TarInfo], bool]


def receive(stream: Iterator[bytes] | None, dest: Path, rule: Rule, limit: int, what: str,
            replace: bool = False) -> list[str]:
    """Copy the members `rule` takes from a get_archive stream into dest; their relative paths.

    The stream is closed on the way out, whole or not: a refusal mid-stream must hang up, or the daemon
    keeps copying into a connection nobody reads and the container cannot be removed.
    The host's own write errors propagate as OSError; the stream's are StepFailed or DockerUnavailable.
    """
    if stream is None:
        return []
    try:
        return _receive(stream, dest, rule, limit, what, replace)
    except tarfile.TarError as e:
        raise StepFailed(f"could not read the {what} the container returned: {e}") from None
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _receive(stream: Iterator[bytes], dest: Path, rule: Rule, limit: int, what: str, replace: bool) -> list[str]:
    taken = []
    with tarfile.open(fileobj=io.BufferedReader(_Capped(stream, limit, what), 1 << 20), mode="r|") as tar:
        for member in tar:
            relative = _relative(member.name)
            if relative is None or not rule(relative, member):
                continue
            target = dest.joinpath(*relative.parts)     # below dest, through folders made here only
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.isdir():
                target.mkdir(exist_ok=True)
            else:
                _write(target, tar.extractfile(member), replace)
            taken.append(str(relative))
    return taken


def _relative(name: str) -> PurePosixPath | None:
    """The member's path below the fetched folder (get_archive puts that folder's name first)."""
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or any(p in ("..", "") for p in parts) or PurePosixPath(name).is_absolute():
        return None
    return PurePosixPath(*parts[1:])


def _write(target: Path, source, replace: bool) -> None:
    if replace:
        _write_whole(target, source)
        return
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise StepFailed(f"the container returned {target.name} twice: refused") from None
    with open(descriptor, "wb") as f:
        _copy(source, f)


def _write_whole(target: Path, source) -> None:
    """A cache entry: whole or not at all, and on any failure (a refusal mid-file, a full disk, Ctrl-C) no
    temporary file is left beside it either."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with open(descriptor, "wb") as f:
            _copy(source, f)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def _copy(source, target) -> None:
    for block in iter(lambda: source.read(1 << 20), b""):
        target.write(block)


def artifact_rule(allowed: tuple[str, ...]) -> Rule:
    """Artifacts: only the target's names; plain files, or folders of plain files for SavedModels."""

    def rule(path: PurePosixPath, member: tarfile.TarInfo) -> bool:
        top = path.parts[0]
        if top not in allowed:
            return False
        folder = top in contract.FOLDER_ARTIFACTS
        if member.isreg() and (folder or len(path.parts) == 1) or member.isdir() and folder:
            return True
        raise StepFailed(f"the container returned {path} as {_kind(member)}, not a regular "
                         f"{'file or folder' if folder else 'file'}: refused")

    return rule


def plain_files(names: Callable[[str], bool], max_bytes: int) -> Rule:
    """Evidence and cache entries: named regular files at the top, below a size cap; the rest is skipped."""
    return lambda path, member: (len(path.parts) == 1 and names(path.name) and member.isreg()
                                 and member.size <= max_bytes)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return f"a link to {member.linkname!r}"
    return "a folder" if member.isdir() else "a special file"
