"""An earlier trtkit output used as MODEL: the second stage of a two-stage build.

Export where TensorFlow is (`trtkit build model.h5 --target onnx`, on any CPU host), then build the
engine on each kind of GPU it will run on (`trtkit build trtkit-out/model --target engine --gpus all`).
The folder brings everything the engine stage needs besides TensorRT: model.onnx, the reference it was
verified against (sample inputs and the source model's outputs), and the node names from trtkit.json.
Its files are checked like `trtkit bench OUT` checks them: regular files, never through a link.
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

from trtkit_steps import contract, event_shapes

from .errors import InvalidModel
from .events import Names
from .runtime.compat import MANIFEST_NAME

NEEDED = ("model.onnx", contract.REFERENCE_INPUTS, contract.REFERENCE_OUTPUTS)


class EarlierBuildRecord(TypedDict):
    """What the new manifest records about the build it continues (its `earlier_build`)."""
    path: str
    manifest_sha256: str
    model_sha256: str | None
    model_format: str | None
    image: str | None
    trtkit_version: str | None


@dataclass(frozen=True)
class EarlierBuild:
    folder: Path
    manifest: dict
    manifest_sha256: str
    files: dict[str, Path]       # artifact name -> its path in folder (NEEDED, and a rewrite it holds)

    @property
    def names(self) -> Names:
        return cast(Names, self.manifest["names"])

    def link(self) -> EarlierBuildRecord:
        model = self.manifest.get("model") or {}
        return {"path": str(self.folder), "manifest_sha256": self.manifest_sha256,
                "model_sha256": model.get("sha256"), "model_format": model.get("format"),
                "image": (self.manifest.get("image") or {}).get("reference"),
                "trtkit_version": self.manifest.get("trtkit_version")}


def read_manifest(path: Path) -> tuple[dict, bytes]:
    """A trtkit.json with the fields later commands rely on (node names, the model's path)."""
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
        if isinstance(manifest["names"], dict) and isinstance(manifest["model"]["path"], str):
            return manifest, raw
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise InvalidModel(f"{path} is not a manifest this trtkit can read (no model path or node names): "
                       "rebuild with this trtkit version")


def manifest_field(manifest: dict, path: Path, field: str, kind: type = str):
    """manifest's dotted field (e.g. "target.chosen") of the kind expected: a trtkit.json is data the user may
    have edited, so a missing or mistyped field is an invalid model naming the file and the field."""
    value: object = manifest
    for key in field.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind):
        raise InvalidModel(f"{path} has no valid {field} (found {value!r}): rebuild with this trtkit version")
    return value


def read_earlier_build(folder: Path) -> EarlierBuild:
    manifest, raw = read_manifest(folder / MANIFEST_NAME)
    if event_shapes.check_event({**manifest["names"], "event": "names"}) is None:   # its own "event" key picks nothing
        raise InvalidModel(f"{folder / MANIFEST_NAME} has node names of the wrong shape")
    missing = [name for name in NEEDED if not (folder / name).exists()]
    if missing:
        raise InvalidModel(f"{folder} lacks {', '.join(missing)}: only the output of an ONNX or engine build "
                           "by this trtkit version can be built further (rebuild it with --target onnx)")
    # and the fp16 / int8 rewrite, where the first stage made one (--precision-recipe rewrite builds from it)
    sent = list(NEEDED) + [name for name in contract.REDUCED_ONNX.values() if (folder / name).exists()]
    for name in sent:
        check_plain(folder / name, folder=False)
    return EarlierBuild(folder, manifest, hashlib.sha256(raw).hexdigest(), {name: folder / name for name in sent})


def check_plain(path: Path, folder: bool) -> None:
    """A regular file (or a folder holding only folders and regular files), never through a link."""
    entries = [path] + (sorted(path.rglob("*")) if folder and path.is_dir() and not path.is_symlink() else [])
    for entry in entries:
        if entry.is_symlink() or not (entry.is_file() or (folder and entry.is_dir())):
            raise InvalidModel(f"{entry} is not a regular file: trtkit sends only files it wrote")
