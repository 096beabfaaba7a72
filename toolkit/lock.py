"""trtkit.lock: what a build used, so the same commit builds with the same things next month or says why not.

`trtkit lock --image REPO --tag TAG` records, per image reference: its registry digests (or, for an image
that never came from a registry, its id), the toolchain image derived from it, every package installed
in that toolchain with its version, and trtkit's version. `trtkit build --locked` runs the locked digest,
and stops before any build when the image, the toolchain's packages or trtkit differ, naming each
difference. The file is JSON, one entry per image, sorted, so that it diffs well in review.
"""
import json
from pathlib import Path

from . import __version__
from .errors import LockMismatch
from .files import write_atomically
from .image_ref import pinned_by_digest
from .runtime.compat import image_arguments
from .toolchain import Toolchain

LOCK_NAME = "trtkit.lock"
FORMAT = 1
SHOWN = 5       # differences named in the error; the rest are counted


def entry(toolchain: Toolchain) -> dict:
    return {"id": toolchain.base_id, "digests": sorted(toolchain.base_digests),
            "toolchain": {"tag": toolchain.tag, "id": toolchain.image_id},
            "packages": toolchain.probe.get("packages") or {}}


def read(path: Path) -> dict:
    """The lock file, each entry checked: a hand-edited or merged lock must not pass --locked half-read."""
    try:
        lock = json.loads(path.read_text())
        if lock.get("format") == FORMAT and isinstance(lock.get("images"), dict):
            _check_entries(lock["images"], path)
            return lock
    except FileNotFoundError:
        raise LockMismatch(f"--locked needs {path}", hint="make it with `trtkit lock --image REPO --tag TAG`") \
            from None
    except (OSError, ValueError, AttributeError):
        pass
    raise LockMismatch(f"{path} is not a trtkit lock file this version reads",
                       hint="delete it and make it again with `trtkit lock`")


def _check_entries(images: dict, path: Path) -> None:
    for reference, locked in images.items():
        if not well_formed(locked):
            raise LockMismatch(f"{path}: the entry for {reference} is not an entry trtkit lock writes "
                               "(id, digests, toolchain, packages)",
                               hint="delete that entry and lock that image again with `trtkit lock`")


def well_formed(locked) -> bool:
    """An entry as entry() writes it: every field verify() and pinned_reference() compare or run."""
    return (isinstance(locked, dict) and isinstance(locked.get("id"), str)
            and isinstance(locked.get("digests"), list) and all(isinstance(d, str) for d in locked["digests"])
            and isinstance(locked.get("toolchain"), dict) and isinstance(locked["toolchain"].get("tag"), str)
            and isinstance(locked.get("packages"), dict))


def record(path: Path, reference: str, toolchain: Toolchain) -> dict:
    """Add or replace reference's entry; the file is replaced in one rename."""
    lock: dict = read(path) if path.exists() else {"format": FORMAT, "images": {}}
    lock["trtkit"] = __version__
    lock["images"][reference] = entry(toolchain)
    lock["images"] = dict(sorted(lock["images"].items()))
    write_atomically(path, lambda f: f.write((json.dumps(lock, indent=2) + "\n").encode()))
    return lock


def locked_entry(lock: dict, path: Path, reference: str) -> dict:
    """The entry a --locked build of reference uses; trtkit itself must be the locked version."""
    if lock.get("trtkit") != __version__:
        raise LockMismatch(f"{path} was made with trtkit {lock.get('trtkit')}, this is trtkit {__version__}",
                           hint=f"install trtkit {lock.get('trtkit')}, or lock again")
    if reference not in lock["images"]:
        raise LockMismatch(f"{path} has no entry for {reference} (it locks {', '.join(lock['images']) or 'nothing'})",
                           hint=lock_command(reference))
    return lock["images"][reference]


def lock_command(reference: str) -> str:
    """The `trtkit lock` that records reference: REPO@sha256:DIGEST is pinned by --image alone."""
    return " ".join(["trtkit", "lock", *image_arguments(reference)])


def pinned_reference(reference: str, locked: dict) -> str:
    """The digest to run instead of a tag that may have moved: the reference's own repository's, never
    another registry's the image was also pushed to; a local image (no such digest) by its tag."""
    return pinned_by_digest(reference, locked["digests"])


def differences(locked: dict, current: dict, image_only: bool = False) -> list[str]:
    """What differs between the lock's entry and what this host has, one phrase each. image_only: the build
    runs the image itself (the engine of a two-stage build), so no toolchain of the lock takes part."""
    found = []
    if locked.get("id") != current["id"]:
        found.append(f"image {locked.get('id')} locked, {current['id']} here")
    if image_only:
        return found
    toolchain = (locked.get("toolchain") or {}).get("tag")
    if toolchain != current["toolchain"]["tag"]:
        found.append(f"toolchain {toolchain} locked, {current['toolchain']['tag']} here")
    packages, here = locked.get("packages") or {}, current["packages"]
    for name in sorted(set(packages) | set(here)):
        if packages.get(name) != here.get(name):
            found.append(f"{name} {packages.get(name) or 'absent'} locked, {here.get(name) or 'absent'} here")
    return found


def verify(locked: dict, toolchain: Toolchain, path: Path, reference: str, image_only: bool = False) -> None:
    found = differences(locked, entry(toolchain), image_only)
    if found:
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise LockMismatch(f"{reference} differs from {path}: {'; '.join(found[:SHOWN])}{more}",
                           hint="build without --locked to use what is here, or `trtkit lock` again")
