"""The build's work folder, and the atomic publication of --out.

The work folder is made beside --out, on the same file system, so the final
step is a rename: a failed or interrupted build leaves --out as it was
(absent, or the previous build's) and removes its work folder.
"""
import os
import shutil
import tempfile
from pathlib import Path

from toolkit.errors import OutputNotWritable


class Staging:
    def __init__(self, out_dir: Path):
        self.out_dir = out_dir.expanduser().absolute()
        try:
            self.out_dir.parent.mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.trtkit-", dir=self.out_dir.parent))
        except OSError as e:
            raise OutputNotWritable(f"cannot write the output folder {self.out_dir}: {e.strerror or e}") from None
        if self.out_dir.exists() and not self.out_dir.is_dir():
            shutil.rmtree(self.root)
            raise OutputNotWritable(f"cannot write the output folder {self.out_dir}: a file is in the way")
        self.work = self.root / "work"          # mounted into the container
        self.result = self.root / "result"      # becomes --out
        (self.work / "artifacts").mkdir(parents=True)
        self.result.mkdir()

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def publish(self) -> Path:
        """Swap the result folder in for --out in two renames."""
        previous = self.root / "previous"
        if self.out_dir.exists():
            os.rename(self.out_dir, previous)
        os.rename(self.result, self.out_dir)
        return self.out_dir
