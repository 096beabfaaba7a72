"""Host-side checks of MODEL, before any container starts.

Cheap checks that need no TensorFlow: the path exists, the file is the kind
its name says. What only loading can tell (a truncated .h5, weights without a
model) is found by the inspect step in the container.
"""
import hashlib
import re
import struct
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from trtkit_steps import contract

from .errors import InvalidModel, ModelNotFound
from .exported import MANIFEST_NAME

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_SIGNATURE_OFFSETS = (0, 512, 1024, 2048)  # after an optional user block
# A .keras archive holds a config, metadata, weights and a few assets. zipfile reads the whole central directory
# and makes an object per entry before anything can be checked (300,000 entries: 163 MiB), so what the end
# records state is checked first. The directory's size bounds the entries zipfile makes, whatever count is stated.
MAX_ARCHIVE_ENTRIES = 10_000
MAX_CENTRAL_DIRECTORY_BYTES = 1 << 20
# The end of central directory record: signature, two disk numbers, entries on this disk, entries in all,
# directory size, directory offset, comment length. Zip64 moves the counts and sizes into a record of its own,
# found through a locator right before the end record.
ZIP_END = struct.Struct("<4s4H2LH")
ZIP64_LOCATOR = struct.Struct("<4sLQL")
ZIP64_END = struct.Struct("<4sQ2H2L4Q")
ZIP_END_SIGNATURE, ZIP64_LOCATOR_SIGNATURE, ZIP64_END_SIGNATURE = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"


@dataclass(frozen=True)
class ModelRef:
    path: Path      # absolute
    format: str     # "h5" | "keras" | "savedmodel" | "onnx" | "trtkit-output" (contract's model formats)

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    @cached_property
    def sha256(self) -> str:
        return sha256_of(self.path)


def resolve_model(path: Path) -> ModelRef:
    path = path.expanduser().absolute()
    if not path.exists():
        raise ModelNotFound(f"model not found: {path}")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return ModelRef(path, "savedmodel")
        if (path / MANIFEST_NAME).is_file():
            return ModelRef(path, contract.OUTPUT_FORMAT)
        raise InvalidModel(f"{path} is a folder without saved_model.pb or {MANIFEST_NAME}, "
                           "so neither a SavedModel nor a trtkit output")
    if path.stat().st_size == 0:
        raise InvalidModel(f"{path} is empty, not a model")
    if path.suffix.lower() == ".onnx":
        if not _looks_like_onnx(path):
            raise InvalidModel(f"{path} is not an ONNX model (a ModelProto starts with its ir_version)")
        return ModelRef(path, contract.ONNX_FORMAT)
    kind = _sniff(path)
    expected = {".h5": "h5", ".hdf5": "h5", ".keras": "keras"}.get(path.suffix.lower())
    if kind is None or (expected and kind != expected):
        raise InvalidModel(f"{path} is not a model trtkit reads (expected an HDF5 .h5, a .keras archive, "
                           "a SavedModel folder, an .onnx file or a trtkit output folder)")
    return ModelRef(path, kind)


def _sniff(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(max(HDF5_SIGNATURE_OFFSETS) + len(HDF5_SIGNATURE))
        if any(head[o:o + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for o in HDF5_SIGNATURE_OFFSETS):
            return "h5"
        directory = _central_directory(f)
    if directory is None:
        return None
    entries, directory_bytes = directory
    if entries > MAX_ARCHIVE_ENTRIES or directory_bytes > MAX_CENTRAL_DIRECTORY_BYTES:
        raise InvalidModel(f"{path} is a zip of {entries} entries in {directory_bytes} bytes of directory, not a "
                           f".keras archive (trtkit reads at most {MAX_ARCHIVE_ENTRIES} entries in "
                           f"{MAX_CENTRAL_DIRECTORY_BYTES >> 20} MiB)")
    try:
        with zipfile.ZipFile(path) as z:
            return "keras" if "config.json" in z.namelist() else None
    except zipfile.BadZipFile:
        return None      # an end record, but no directory where it says


def _central_directory(f: BinaryIO) -> tuple[int, int] | None:
    """A zip's entry count and central directory size as its end records state them, found where zipfile
    looks (the end record last, or before a comment; zip64's right before it); None when there is no end record."""
    file_bytes = f.seek(0, 2)
    tail_start = max(file_bytes - ZIP_END.size - (1 << 16), 0)     # a comment is shorter than 64 KiB
    f.seek(tail_start)
    tail = f.read()
    at = len(tail) - ZIP_END.size
    if not (at >= 0 and tail.startswith(ZIP_END_SIGNATURE, at) and tail.endswith(b"\0\0")):
        at = tail.rfind(ZIP_END_SIGNATURE)
    if at < 0 or len(tail) - at < ZIP_END.size:
        return None
    *_, entries, directory_bytes, _, _ = ZIP_END.unpack_from(tail, at)
    locator_at = tail_start + at - ZIP64_LOCATOR.size
    if locator_at - ZIP64_END.size >= 0:
        f.seek(locator_at - ZIP64_END.size)
        zip64 = f.read(ZIP64_END.size + ZIP64_LOCATOR.size)
        if zip64[ZIP64_END.size:].startswith(ZIP64_LOCATOR_SIGNATURE) and zip64.startswith(ZIP64_END_SIGNATURE):
            *_, entries, directory_bytes, _ = ZIP64_END.unpack_from(zip64)
    return entries, directory_bytes


def _looks_like_onnx(path: Path) -> bool:
    """ONNX writers put ModelProto's field 1 (ir_version, a varint) first: tag byte 0x08."""
    with path.open("rb") as f:
        return f.read(1) == b"\x08"


def size_of(path: Path) -> int:
    """Bytes of a file, or of all files in a folder (a SavedModel artifact)."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sha256_of(path: Path) -> str:
    """Digest of a file, or of a folder's files (names and contents, in order)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def safe_name(name: str) -> str:
    """A folder name from a model's name: no separators, no leading dots, never empty, '.' or '..'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "model"
