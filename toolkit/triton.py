"""--triton-repo DIR: a Triton Inference Server model repository from a build's output.

    DIR/<model>/config.pbtxt     the real input and output names, data types (float16 for an engine
                                 built with --io-precision fp16) and dims (the batch dimension left
                                 out), max_batch_size, dynamic batching on
    DIR/<model>/1/model.plan     platform tensorrt_plan (or 1/model.onnx, onnxruntime_onnx)

max_batch_size is the largest batch of the engine's optimization profile; an ONNX model has no
profile, so its largest --shapes batch, else ONNX_MAX_BATCH. A model whose inputs fix their first
dimension (exported for one batch) takes no batches: max_batch_size 0, full dims, no dynamic batching.
DIR/<model> is replaced only when it holds what trtkit writes there (or with --force), and it appears
in one rename.
"""
import json
import shutil
from pathlib import Path

from trtkit_steps import contract

from . import __version__
from .errors import OutputNotWritable, TargetUnsupported
from .events import Names
from .manifest import Manifest
from .modelfile import safe_name
from .staging import refuse_protected, replace_folder

PLATFORMS = {"engine": ("tensorrt_plan", "model.plan"), "onnx": ("onnxruntime_onnx", "model.onnx")}
VERSION = "1"
ONNX_MAX_BATCH = 1024
DATA_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "int8": "TYPE_INT8",
              "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64", "uint8": "TYPE_UINT8",
              "bool": "TYPE_BOOL"}


def model_folder(repo: Path, model_name: str, target: str, force: bool, protected: dict[str, Path]) -> Path:
    """DIR/<model>, checked before the build starts: a build never ends in a repository it cannot write."""
    if target not in PLATFORMS:
        raise TargetUnsupported(f"--triton-repo serves TensorRT engines and ONNX models, not --target {target}")
    folder = repo.expanduser().resolve() / safe_name(model_name)
    refuse_protected(folder, protected)
    _refuse_foreign(folder, force)
    return folder


def _refuse_foreign(folder: Path, force: bool) -> None:
    foreign = _foreign(folder)
    if foreign and not force:
        raise OutputNotWritable(f"the Triton model folder {folder} holds files trtkit did not write "
                                f"({', '.join(foreign[:5])})", hint="choose another --triton-repo, or add --force")


def _foreign(folder: Path) -> list[str]:
    """What in an existing model folder is not config.pbtxt or a version folder of one model file."""
    if not folder.exists():
        return []
    if folder.is_symlink() or not folder.is_dir():
        return [folder.name]
    expected = {"config.pbtxt": False, VERSION: True}
    found = []
    for entry in folder.iterdir():
        if entry.is_symlink() or entry.name not in expected or entry.is_dir() != expected[entry.name]:
            found.append(entry.name)
        elif entry.is_dir():
            found += [f"{VERSION}/{e.name}" for e in entry.iterdir()
                      if e.is_symlink() or not e.is_file() or e.name not in ("model.plan", "model.onnx")]
    return sorted(found)


def write(folder: Path, out_dir: Path, manifest: Manifest, force: bool) -> None:
    """The model folder from a finished output, swapped in whole. It is checked again first: files put there
    while the build ran are not trtkit's either."""
    target = manifest["target"]["chosen"]
    platform, artifact = PLATFORMS[target]
    config = config_text(folder.name, manifest, platform)

    served = _served_file(out_dir, manifest, target)

    def fill(new: Path) -> None:
        (new / VERSION).mkdir()
        shutil.copyfile(out_dir / served, new / VERSION / artifact)
        (new / "config.pbtxt").write_text(config)

    _refuse_foreign(folder, force)
    try:
        replace_folder(folder, fill)
    except OSError as e:
        raise OutputNotWritable(f"cannot write the Triton model folder {folder}: {e.strerror or e}") from None


def _served_file(out_dir: Path, manifest: Manifest, target: str) -> str:
    """The artifact Triton serves: an ONNX build's fp16 / int8 rewrite where --precision made one (its inputs and
    outputs stay float32, so the config is the FP32 model's), else the target's own."""
    reduced = contract.REDUCED_ONNX.get(str(manifest["options"].get("precision")))
    if target == "onnx" and reduced and (out_dir / reduced).is_file():
        return reduced
    return PLATFORMS[target][1]


def max_batch(manifest: Manifest) -> int:
    engine = manifest["engine"]
    if engine:
        return min(profile["max"][0] for profile in engine["profiles"].values())
    shapes = manifest["options"].get("shapes") or {}
    batches = [dims[2] if isinstance(dims[2], int) else dims[2][0] for dims in shapes.values()]
    return min(batches) if batches else ONNX_MAX_BATCH


def config_text(name: str, manifest: Manifest, platform: str) -> str:
    names: Names | None = manifest["names"]
    if not names or any("shape" not in o or "dtype" not in o for o in names["outputs"]):
        raise TargetUnsupported("--triton-repo needs output shapes and types, which this build's manifest lacks")
    half = platform == PLATFORMS["engine"][0] and manifest["options"].get("io_precision") == "fp16"
    tensors = {role: [(t["name"], _served_dtype(t["dtype"], half), t["shape"]) for t in found]
               for role, found in (("input", names["inputs"]), ("output", names["outputs"]))}
    batched = all(isinstance(t["shape"], list) and t["shape"] and t["shape"][0] is None for t in names["inputs"])
    lines = [f"# written by trtkit {__version__}", f"name: {json.dumps(name)}", f"platform: {json.dumps(platform)}",
             f"max_batch_size: {max_batch(manifest) if batched else 0}"]
    for role, specs in tensors.items():
        lines += [f"{role} [", ",\n".join(_tensor(*spec, batched) for spec in specs), "]"]
    return "\n".join(lines + (["dynamic_batching { }"] if batched else []) + [""])


def _served_dtype(dtype: str, half: bool) -> str:
    """The type Triton serves: an engine built with --io-precision fp16 takes and gives float16 for float32."""
    return "float16" if half and dtype == "float32" else dtype


def _tensor(name: str, dtype: str, shape: list, batched: bool) -> str:
    """One input or output entry. Names and shapes came out of the container: only whole numbers become dims."""
    if dtype not in DATA_TYPES:
        raise TargetUnsupported(f"Triton has no data type for {name}'s {dtype}")
    if not isinstance(shape, list) or not shape or any(
            d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0) for d in shape):
        raise TargetUnsupported(f"{name}'s shape {shape!r} is not a list of sizes: no Triton config written")
    # A batched model's batch dimension is implied. The batch dimension alone (one value a row): Triton wants
    # some dims, so [ 1 ], reshaped to none for the model.
    dims = ", ".join("-1" if d is None else str(d) for d in (shape[1:] if batched else shape))
    reshape = "" if dims else "\n    reshape: { shape: [ ] }"
    return (f"  {{\n    name: {json.dumps(name)}\n    data_type: {DATA_TYPES[dtype]}\n    dims: [ {dims or 1} ]"
            f"{reshape}\n  }}")
