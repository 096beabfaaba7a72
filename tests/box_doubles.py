"""Stand-ins for what a box sends back (archives, exits) and for a full disk: the pure tests of
transfer, session and events share them."""
import io
import tarfile
from pathlib import Path

from trtkit.docker_runner import Limits
from trtkit.events import BuildRecord
from trtkit.modelfile import ModelRef
from trtkit.pipeline_run import exit_error
from trtkit.plan import BuildPlan


def tar_stream(*members, top="artifacts"):
    """A get_archive-like stream: (name, kind, payload/linkname) below `top`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(top)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, kind, payload in members:
            info = tarfile.TarInfo(f"{top}/{name}" if not name.startswith("/") else name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "device": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = payload or ""
            tar.addfile(info)
    data = buffer.getvalue()
    return iter([data[i:i + 1000] for i in range(0, len(data), 1000)])


def exit_of(code, record=None, expired=None, oom=False):
    plan = BuildPlan(model=ModelRef(Path("/m.h5"), "h5"), image="i:t", timeout=30)
    return exit_error(code, record or BuildRecord(), expired, oom, plan, Limits(memory_bytes=3 << 30))


class FakeArchiveResponse:
    """What Box.fetch relays: a streamed HTTP response of the daemon's tar, and whether it was closed."""

    def __init__(self, chunks):
        self.chunks, self.closed = chunks, False

    def iter_content(self, chunk_size):
        return iter(self.chunks)

    def close(self):
        self.closed = True


def fill(disk: Path) -> None:
    """Fill a small file system to the last byte."""
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
