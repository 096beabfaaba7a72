"""Call a trtkit engine from your application: numpy in, numpy out, like Keras' Model.predict.

    from trtkit.runtime import Engine
    engine = Engine("trtkit-out/model")          # the output folder, or a .plan
    y = engine.predict(x)

- Before loading, the engine is checked against trtkit.json beside it: the TensorRT release and the GPU's
  compute capability must be the ones it was built with (else IncompatibleEngine says what to rebuild);
  another GPU model of the same capability loads, with a warning that it was tuned elsewhere.
- Inputs by position, or by name in a dict (the engine's name, or the Keras name: `lstm_1_input` or
  `lstm_1_input:0`); one output comes back as an array, several as a list in Keras' order (as_dict=True:
  a dict by name). Any batch the optimization profiles allow; a larger one is split into runs.
- Small batches (up to small_batch_bytes of input) replay a CUDA graph of copy-in, run and copy-out,
  captured per input shape on its first use and kept in a bounded LRU cache (graph_cache_size).
- Other batches stream through pinned staging buffers in chunks of about stream_chunk_bytes: host-to-device
  copies, compute and device-to-host copies run on three streams and overlap, while a thread pool fills the
  next chunk from your array and empties finished ones into the result. An input already in page-locked
  memory (made by pinned_empty(), or pinned by PyTorch or cudaHostRegister) of the engine's dtype is copied
  to the GPU straight from your array, without staging: for the largest batches that is the fastest way in.
- Thread-safe: each predict() takes a lane (one execution context, its streams, buffers and graphs) for the
  optimization profile its shapes need. TensorRT lets only one live execution context hold a profile of an
  engine with dynamic shapes, so an engine has one lane per profile: calls on one profile run one at a time,
  and at most max_lanes calls run at once. Further concurrent calls wait for a lane.
- Float16 inputs and outputs of the engine are converted at the edge: you pass and get float32.

Python 3.8+, numpy and TensorRT 8.6+ only; TensorRT is imported when an Engine is made, not before. CUDA
is reached through the driver (runtime_cuda.py, ctypes), so no CUDA Python package is needed.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import json
import operator
import os
import re
import threading
import warnings
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

try:
    from . import runtime_cuda as cuda
except ImportError:  # shipped as two top-level modules, beside a script in a container
    import runtime_cuda as cuda  # type: ignore[no-redef]

__all__ = ["Engine", "Host", "IncompatibleEngine", "ProfileRange", "TensorSpec", "pinned_empty"]

MANIFEST_NAME = "trtkit.json"
PLAN_NAME = "model.plan"
MIN_TENSORRT = (8, 6)         # the name-based tensor API (set_input_shape, execute_async_v3) as tested
# Live execution contexts one optimization profile of an engine with dynamic shapes may have. TensorRT 8.6 refuses a
# second ("Profile 0 has been chosen by another IExecutionContext", seen on an H200), and NvInferRuntime.h of 10.x
# and 11.x still says "each execution context in concurrent use must use a separate optimization profile": one, on
# every release. The headers set no such limit for an engine without dynamic shapes, but that is unconfirmed on a
# GPU here, so it has one lane too.
CONTEXTS_PER_PROFILE = 1
STREAM_SLOTS = 3              # chunks in flight: one filling, one copying in or computing, one copying out
# Parts of a copy for the fill threads are at least this big: an H100 host filled 8.2 MB of pinned memory in 0.89 ms
# on one thread, 0.44 ms on four (2 MB each), 0.59 on eight and 1.09 on sixteen (benchmarks/host_transfer.py 1024).
MIN_FILL_PART_BYTES = 2 << 20
SMALL_BATCH_BYTES = 16 << 20   # Engine's defaults: input bytes up to which a batch is one graph run,
STREAM_CHUNK_BYTES = 64 << 20  # and input bytes per streamed chunk (H100, batch 100000 of 845 MB: 64 MB chunks and
FILL_THREADS = 16              # 16 fill threads took 48 ms, 32 MB and 8 took 58: benchmarks/runtime_check.py --sweep)


class IncompatibleEngine(RuntimeError):
    """The engine cannot run here; the message says what to rebuild or install."""


# --- where the engine was built, and where it would run ---------------------

@dataclass(frozen=True)
class Host:
    """Where the engine would run: TensorRT's version, the GPU and its compute capability ("9.0")."""
    tensorrt: str
    gpu: str
    compute_capability: str


@dataclass(frozen=True)
class Built:
    """Where trtkit built the engine (trtkit.json), and how to build it again."""
    tensorrt: str
    gpu: str
    compute_capability: str
    source: str      # what `trtkit build` took: the model, or the earlier output folder it continued
    image: str       # the image it was built in


@dataclass(frozen=True)
class Manifest:
    built: Built
    names: dict              # trtkit.json's "names": inputs and outputs with their Keras tensors
    plan_sha256: str | None  # the engine's digest, when recorded


def locate(path: str) -> tuple[str, str | None]:
    """(the plan, the trtkit.json that describes it or None) for an output folder or a .plan file."""
    if os.path.isdir(path):
        plan = os.path.join(path, PLAN_NAME)
        if not os.path.isfile(plan):
            raise FileNotFoundError(f"{path} has no {PLAN_NAME}: give the output folder of "
                                    "`trtkit build --target engine`, or a .plan file")
    elif os.path.isfile(path):
        plan = path
    else:
        raise FileNotFoundError(f"no engine at {path}")
    manifest = os.path.join(os.path.dirname(os.path.abspath(plan)), MANIFEST_NAME)
    return plan, manifest if os.path.isfile(manifest) else None


def read_manifest(path: str, plan_name: str) -> Manifest | None:
    """The engine's record in trtkit.json; None when that manifest lists no engine of this plan's name."""
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as e:  # JSONDecodeError and undecodable bytes alike
        raise IncompatibleEngine(f"{path} is not a trtkit manifest ({e})") from None
    if not isinstance(manifest, dict):
        raise IncompatibleEngine(f"{path} is not a trtkit manifest (not a JSON object)")
    artifact = next((a for a in manifest.get("artifacts") or [] if a.get("name") == plan_name), None)
    if artifact is None or artifact.get("kind") != "engine":
        return None
    engine = manifest.get("engine")
    if not isinstance(engine, dict) or not all(isinstance(engine.get(k), str)
                                               for k in ("tensorrt", "gpu", "compute_capability")):
        raise IncompatibleEngine(f"{path} lacks the engine's TensorRT version and GPU")
    source = (manifest.get("earlier_build") or {}).get("path") or (manifest.get("model") or {}).get("path", "MODEL")
    image = (manifest.get("image") or {}).get("reference", "IMAGE")
    built = Built(engine["tensorrt"], engine["gpu"], engine["compute_capability"], source, image)
    return Manifest(built, manifest.get("names") or {}, artifact.get("sha256"))


def load_manifest(path: str | None, plan_name: str, check: bool) -> Manifest | None:
    """read_manifest; with check off, a manifest it cannot use is ignored with a warning (the engine then goes
    by its own tensor names), as check=False promises to load the engine unchecked."""
    if path is None:
        return None
    try:
        return read_manifest(path, plan_name)
    except (OSError, IncompatibleEngine) as e:
        if check:
            raise
        warnings.warn(f"trtkit.runtime: {e}; check=False, so the engine loads by its own names", RuntimeWarning,
                      stacklevel=3)
        return None


def check_plan_digest(plan: bytes, manifest: Manifest, plan_path: str) -> None:
    """The plan must be the engine the manifest describes, or the manifest's checks say nothing about it."""
    if manifest.plan_sha256 and hashlib.sha256(plan).hexdigest() != manifest.plan_sha256:
        raise IncompatibleEngine(f"{plan_path} is not the engine {MANIFEST_NAME} beside it describes (its sha256 "
                                 "differs): it was changed or damaged since the build; rebuild it, or pass "
                                 "check=False to load it unchecked")


def tensorrt_release(version: str) -> tuple[int, int, int]:
    """(major, minor, patch): "8.6.1", "8.6.1.6" (older Python packages) and trtexec's "8.6.1" agree."""
    parts = [int(m.group()) if m else 0 for m in (re.match(r"\d+", p) for p in version.split(".")[:3])]
    major, minor, patch = (parts + [0, 0, 0])[:3]
    return major, minor, patch


def require_supported_tensorrt(version: str) -> None:
    if tensorrt_release(version)[:2] < MIN_TENSORRT:
        raise IncompatibleEngine(f"trtkit.runtime needs TensorRT {MIN_TENSORRT[0]}.{MIN_TENSORRT[1]} or newer "
                                 f"(set_input_shape, execute_async_v3); this host has {version}")


def compatibility(built: Built, here: Host) -> str | None:
    """Raises IncompatibleEngine when the engine cannot load here; else a warning, or None when it runs as built.

    An engine loads only with the TensorRT release that built it, and holds kernels for one compute capability.
    """
    where = (f"built with TensorRT {built.tensorrt} on {built.gpu}, sm {built.compute_capability}; "
             f"here TensorRT {here.tensorrt} on {here.gpu}, sm {here.compute_capability}")
    if tensorrt_release(built.tensorrt) != tensorrt_release(here.tensorrt):
        raise IncompatibleEngine(
            f"the engine cannot load here: it was built with TensorRT {built.tensorrt} and this host has TensorRT "
            f"{here.tensorrt} ({where}). Install TensorRT {built.tensorrt} here (pip install "
            f"'tensorrt=={'.'.join(map(str, tensorrt_release(built.tensorrt)))}.*'), or rebuild it with an image "
            f"whose TensorRT is {here.tensorrt}: "
            f"{_rebuild(built, f'--image REPO --tag <a tag with TensorRT {here.tensorrt}>')}")
    if built.compute_capability != here.compute_capability:
        raise IncompatibleEngine(
            f"the engine cannot load here: it was built for sm {built.compute_capability} and this GPU is sm "
            f"{here.compute_capability} ({where}). Rebuild it on this GPU: "
            f"{_rebuild(built, _image_arguments(built.image))}")
    if built.gpu != here.gpu:
        return (f"the engine loads here, but it was tuned on {built.gpu} (sm {built.compute_capability}), not "
                f"{here.gpu}: rebuild on this GPU for its best speed: "
                f"{_rebuild(built, _image_arguments(built.image))}")
    return None


def _rebuild(built: Built, image_arguments: str) -> str:
    return f"trtkit build {built.source} --target engine {image_arguments} --gpus all"


def _image_arguments(image: str) -> str:
    """How trtkit build names an image: --image REPO --tag TAG, or --image REPO@sha256:... (pinned). The
    runtime ships without the rest of trtkit, so options.image_arguments is not at hand."""
    repository, colon, tag = image.rpartition(":")
    if "@" in image or not colon or "/" in tag:
        return f"--image {image}"
    return f"--image {repository} --tag {tag}"


# --- names: by position, engine name or Keras name ----------------------------

@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the engine, as predict() sees it."""
    name: str                  # the engine's tensor name; for trtkit's engines, the Keras input or output name
    keras_tensor: str | None   # the Keras tensor it came from ("lstm_1_input:0"), from trtkit.json
    dtype: np.dtype            # what predict() takes and returns: float32 where the engine has float16
    engine_dtype: np.dtype     # what the engine's tensor holds

    @property
    def aliases(self) -> tuple[str, ...]:
        """The names a dict of inputs may use for it."""
        names = [self.name]
        if self.keras_tensor:
            names += [self.keras_tensor, re.sub(r":\d+$", "", self.keras_tensor)]
        return tuple(dict.fromkeys(names))

    def describe(self) -> str:
        return f"{self.name} (Keras {self.keras_tensor})" if self.keras_tensor else self.name


def user_dtype(engine_dtype: np.dtype) -> np.dtype:
    """What the user sees of an engine tensor's type: float16 becomes float32 at the edge."""
    return np.dtype(np.float32) if engine_dtype == np.float16 else np.dtype(engine_dtype)


def tensor_specs(io: Sequence[tuple[str, bool, np.dtype]], names: dict | None
                 ) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of the engine's tensors [(name, is input, dtype)], in Keras' order where trtkit.json
    names them; tensors it does not name follow in the engine's order."""
    specs = []
    for is_input, key in ((True, "inputs"), (False, "outputs")):
        engine_names = {name: dtype for name, flag, dtype in io if flag == is_input}
        recorded = [entry for entry in (names or {}).get(key) or [] if isinstance(entry, dict)]
        unknown = [entry.get("name") for entry in recorded if entry.get("name") not in engine_names]
        if unknown:
            raise IncompatibleEngine(f"{MANIFEST_NAME} names {key} {unknown} that the engine does not have; "
                                     f"its {key} are {sorted(engine_names)}")
        keras = {entry["name"]: entry.get("keras_tensor") for entry in recorded}
        order = list(keras) + [name for name in engine_names if name not in keras]
        specs.append([TensorSpec(name, keras.get(name), user_dtype(engine_names[name]), np.dtype(engine_names[name]))
                      for name in order])
    return specs[0], specs[1]


def map_inputs(x: Any, inputs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """{engine input name: array} from one array, a list by position, or a dict by engine or Keras name."""
    if isinstance(x, dict):
        return _inputs_by_name(x, inputs)
    if len(inputs) == 1:
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            x = x[0]
        return {inputs[0].name: np.asarray(x)}
    if not isinstance(x, (list, tuple)) or len(x) != len(inputs):
        raise ValueError(f"the engine has {len(inputs)} inputs, {', '.join(s.describe() for s in inputs)}: "
                         f"pass a list of {len(inputs)} arrays in that order, or a dict by name")
    return {spec.name: np.asarray(value) for spec, value in zip(inputs, x)}


def _inputs_by_name(x: dict, inputs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for key, value in x.items():
        spec = next((s for s in inputs if key in s.aliases), None)
        if spec is None:
            raise ValueError(f"{key!r} is not an input of the engine; its inputs are "
                             f"{', '.join(s.describe() for s in inputs)}")
        if spec.name in found:
            raise ValueError(f"input {spec.describe()} is given twice")
        found[spec.name] = np.asarray(value)
    missing = [s.describe() for s in inputs if s.name not in found]
    if missing:
        raise ValueError(f"no data for input {', '.join(missing)}")
    return found


def check_dtypes(arrays: dict[str, np.ndarray], inputs: Sequence[TensorSpec]) -> None:
    """Casts within a kind (float64 or float16 to float32, float32 to the engine's float16) are made; no others."""
    for spec in inputs:
        given = arrays[spec.name].dtype
        if not np.can_cast(given, spec.engine_dtype, casting="same_kind"):
            raise TypeError(f"input {spec.describe()} is {given}; the engine takes {spec.dtype}")


def arrange_outputs(results: dict[str, np.ndarray], outputs: Sequence[TensorSpec], as_dict: bool) -> Any:
    """Like Keras: one array, or a list in the model's output order; or a dict by name."""
    if as_dict:
        return {spec.name: results[spec.name] for spec in outputs}
    if len(outputs) == 1:
        return results[outputs[0].name]
    return [results[spec.name] for spec in outputs]


# --- shapes: profiles, chunks -------------------------------------------------

@dataclass(frozen=True)
class ProfileRange:
    """One input's shapes in one optimization profile."""
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def volume(shape: Sequence[int]) -> int:
    """Elements of a shape, as a Python int (numpy's int64 product can overflow)."""
    return functools.reduce(operator.mul, shape, 1)


def batch_of(shapes: dict[str, tuple[int, ...]]) -> int:
    if not all(shapes.values()):
        raise ValueError(f"every input needs a batch dimension first; got shapes {shapes}")
    batches = {name: shape[0] for name, shape in shapes.items()}
    if len(set(batches.values())) != 1:
        raise ValueError(f"the inputs have different batch sizes: {batches}")
    return next(iter(batches.values()))


def batch_range(profile: dict[str, ProfileRange]) -> tuple[int, int]:
    """The batch sizes every input of the profile accepts."""
    return max(r.min[0] for r in profile.values()), min(r.max[0] for r in profile.values())


def _fits_apart_from_batch(rng: ProfileRange, shape: tuple[int, ...]) -> bool:
    return len(shape) == len(rng.min) and all(low <= d <= high for d, low, high in
                                              zip(shape[1:], rng.min[1:], rng.max[1:]))


def select_profile(profiles: Sequence[dict[str, ProfileRange]], shapes: dict[str, tuple[int, ...]]) -> int:
    """The profile with the narrowest batch range that takes these shapes, batch included (the first of equals):
    a profile for exactly this batch (build --exact-batches) has kernels chosen for it. Else, of those whose
    smallest batch it reaches, the one that takes it in the largest runs (the batch is then split)."""
    fitting = [i for i, profile in enumerate(profiles)
               if all(_fits_apart_from_batch(profile[name], shape) for name, shape in shapes.items())]
    if not fitting:
        ranges = "; ".join(f"profile {i}: " + ", ".join(f"{name} {list(r.min)} to {list(r.max)}"
                                                        for name, r in profile.items())
                           for i, profile in enumerate(profiles))
        raise ValueError(f"inputs of shapes {shapes} fit none of the engine's optimization profiles ({ranges}); "
                         "rebuild with --shapes that cover them")
    batch = batch_of(shapes)
    holding = [i for i in fitting if batch_range(profiles[i])[0] <= batch <= batch_range(profiles[i])[1]]
    if holding:
        return min(holding, key=lambda i: batch_range(profiles[i])[1] - batch_range(profiles[i])[0])
    reached = [i for i in fitting if batch_range(profiles[i])[0] <= batch]
    if not reached:
        raise ValueError(f"a batch of {batch} is under the smallest batch of every optimization profile that fits "
                         f"its shapes ({', '.join(str(batch_range(profiles[i])[0]) for i in fitting)}); rebuild "
                         "with --shapes whose batch range starts lower")
    return max(reached, key=lambda i: batch_range(profiles[i])[1])


def stream_rows(row_bytes: int, low: int, high: int, chunk_bytes: int) -> int:
    """Rows per streamed chunk: about chunk_bytes of input, within the batches the profile takes."""
    return max(1, low, min(high, chunk_bytes // max(row_bytes, 1)))


def plan_chunks(total: int, rows: int, low: int, high: int) -> list[tuple[int, int]]:
    """[(start, stop)]: runs of `rows` rows that cover `total`, each a batch the profile takes (`low` to `high`).
    As few sizes as can be: runs of `rows`, then what is left (shared with the run before it when it alone would be
    under `low`). Each change of size makes the stream wait and TensorRT set up the new shape: on an H100, runs of
    7692 and 7693 rows in turn spent 22 of the 53 ms of a batch of 100000 there. Where the rest cannot make a run
    of `low` (rows close to low), the rows are spread evenly over as many runs of `rows` as take `low` each, longer
    runs (up to `high`) where they must."""
    if total < 1:
        raise ValueError("predict() needs at least one row")
    runs = -(-total // rows)
    last = total - (runs - 1) * rows
    sizes = [rows] * (runs - 1) + [last]
    if last < low and runs > 1 and rows + last - low >= low:
        sizes[-2:] = [rows + last - low, low]
    elif last < low:
        runs = min(runs, total // low)
        if runs < 1 or -(-total // runs) > high:
            raise ValueError(f"the engine runs batches of {low} to {high} rows: {total} rows cannot be split "
                             "into such runs")
        return even_ranges(total, runs)
    bounds = [0, *itertools.accumulate(sizes)]
    return list(zip(bounds[:-1], bounds[1:]))


@functools.lru_cache(maxsize=256)  # pure, and asked again for every input of every call
def split_rows(rows: int, row_bytes: int, workers: int, min_part_bytes: int = MIN_FILL_PART_BYTES
               ) -> list[tuple[int, int]]:
    """[(start, stop)] of about equal parts for the fill threads; one part for a small copy."""
    return even_ranges(rows, max(1, min(workers, rows, rows * row_bytes // max(min_part_bytes, 1))))


def even_ranges(total: int, parts: int) -> list[tuple[int, int]]:
    bounds = [total * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass(frozen=True)
class CallPlan:
    """How one predict() call runs."""
    profile: int
    chunks: list[tuple[int, int]]   # row ranges, each one run of the engine
    buffer_rows: int                # rows the staging buffers are made for (a batch the profile takes)
    small: bool                     # one run from the small buffers (a CUDA graph); else streamed


def plan_call(profiles: Sequence[dict[str, ProfileRange]], shapes: dict[str, tuple[int, ...]], row_bytes: int,
              small_bytes: int, chunk_bytes: int) -> CallPlan:
    """row_bytes: input bytes per row, as the engine holds them. Small buffers are made for the largest small
    batch at once, so that growing batches do not replace them (and the graphs recorded on them) each time."""
    profile = select_profile(profiles, shapes)
    low, high = batch_range(profiles[profile])
    batch = batch_of(shapes)
    if low <= batch <= high and batch * row_bytes <= small_bytes:
        return CallPlan(profile, [(0, batch)], max(batch, min(high, small_bytes // max(row_bytes, 1))), small=True)
    rows = stream_rows(row_bytes, low, high, chunk_bytes)
    chunks = plan_chunks(batch, rows, low, high)
    return CallPlan(profile, chunks, max(rows, *(stop - start for start, stop in chunks)), small=False)


# --- bounded caches and the lane pool (no GPU here) ---------------------------

class GraphCache:
    """Values (CUDA graphs) by key (input shapes), least recently used evicted first; release() frees a value."""

    def __init__(self, capacity: int, release: Callable[[Any], None]):
        self.capacity = capacity
        self._release = release
        self._entries: OrderedDict = OrderedDict()

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Any, entry: Any) -> None:
        if key in self._entries:
            self._release(self._entries.pop(key))
        self._entries[key] = entry
        while len(self._entries) > self.capacity:
            self._release(self._entries.popitem(last=False)[1])

    def clear(self) -> None:
        while self._entries:
            self._release(self._entries.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._entries)


class LanePool:
    """Lanes by key (the optimization profile), made on demand by factory(key): at most per_key of one key, and
    at most `size` in use at once. A caller waits while its key has no free lane and may have no more, or while
    `size` lanes are in use."""

    def __init__(self, factory: Callable[[Any], Any], size: int, per_key: int | None = None):
        if size < 1 or (per_key is not None and per_key < 1):
            raise ValueError("max_lanes must be at least 1")
        self._factory = factory
        self._size = size
        self._per_key = size if per_key is None else per_key
        self._free: dict[Any, list] = {}
        self._made: dict[Any, int] = {}
        self._busy = 0
        self._closed = False
        self._changed = threading.Condition()

    @contextmanager
    def lane(self, key: Any = 0) -> Iterator[Any]:
        lane = self._acquire(key)
        try:
            yield lane
        finally:
            with self._changed:
                self._free.setdefault(key, []).append(lane)
                self._busy -= 1
                self._changed.notify_all()  # waiters may be for other keys

    def _acquire(self, key: Any) -> Any:
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the Engine is closed")
                if self._busy < self._size:
                    if self._free.get(key):
                        self._busy += 1
                        return self._free[key].pop()
                    if self._made.get(key, 0) < self._per_key:
                        self._made[key] = self._made.get(key, 0) + 1
                        self._busy += 1
                        break
                self._changed.wait()
        try:
            return self._factory(key)
        except BaseException:
            with self._changed:
                self._made[key] -= 1
                self._busy -= 1
                self._changed.notify_all()
            raise

    def close(self, destroy: Callable[[Any], None]) -> None:
        """Refuse new calls, wait for those running, then destroy every lane."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            while self._busy:
                self._changed.wait()
            lanes = [lane for free in self._free.values() for lane in free]
            self._free, self._made = {}, {}
        failures = []
        for lane in lanes:
            try:
                destroy(lane)
            except BaseException as e:  # the other lanes are still freed
                failures.append(e)
        if failures:
            raise failures[0]


# --- TensorRT -----------------------------------------------------------------

_loggers: list = []


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as e:
        raise ImportError("trtkit.runtime needs TensorRT's Python package: pip install 'trtkit[runtime]' on a GPU "
                          f"host, or run it in NVIDIA's TensorRT container ({e})") from None
    return tensorrt


def _logger(trt: Any) -> Any:
    """One logger for every runtime: TensorRT warns when a second one differs."""
    if not _loggers:
        _loggers.append(trt.Logger(trt.Logger.WARNING))
    return _loggers[0]


def probe_host(device: int) -> Host:
    """This host's TensorRT and GPU (what the manifest's record is checked against)."""
    gpu, capability = cuda.device_info(device)
    return Host(_import_tensorrt().__version__, gpu, capability)


def _numpy_dtype(trt: Any, name: str, dtype: Any) -> np.dtype:
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError:
        raise ValueError(f"tensor {name} is {dtype}, which numpy has no type for: trtkit.runtime cannot "
                         "pass it") from None


class _Loaded:
    """The deserialized engine and what every lane shares of it."""

    def __init__(self, trt: Any, plan: bytes):
        self.trt = trt
        self.runtime = trt.Runtime(_logger(trt))  # must outlive the engine
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise IncompatibleEngine("TensorRT cannot load the engine: engines load only with the TensorRT version "
                                     "and GPU model that built them (TensorRT's log above says more)")
        engine = self.engine
        self.scratch_bytes = (engine.device_memory_size_v2 if hasattr(engine, "device_memory_size_v2")
                              else engine.device_memory_size)
        # Only an engine with dynamic shapes has profiles to select ("need not be called" otherwise).
        self.dynamic = any(-1 in tuple(engine.get_tensor_shape(engine.get_tensor_name(index)))
                           for index in range(engine.num_io_tensors))
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # live contexts by profile

    def contexts_per_profile(self, wanted: int) -> int:
        """How many live contexts (lanes) one profile may have, of the `wanted`."""
        return min(wanted, CONTEXTS_PER_PROFILE)

    def io(self) -> list[tuple[str, bool, np.dtype]]:
        """[(name, is input, dtype)] in the engine's order; only device tensors in row-major layout."""
        trt, engine, found = self.trt, self.engine, []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            if engine.get_tensor_location(name) != trt.TensorLocation.DEVICE:
                raise ValueError(f"tensor {name} is a host (shape) tensor: trtkit.runtime passes device tensors only")
            if engine.get_tensor_format(name) != trt.TensorFormat.LINEAR:
                raise ValueError(f"tensor {name} has the vectorized format {engine.get_tensor_format(name)}: "
                                 "trtkit.runtime passes row-major (LINEAR) tensors only")
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            found.append((name, is_input, _numpy_dtype(trt, name, engine.get_tensor_dtype(name))))
        return found

    def profiles(self, inputs: Sequence[TensorSpec]) -> list[dict[str, ProfileRange]]:
        return [{spec.name: self._range(spec.name, index) for spec in inputs}
                for index in range(self.engine.num_optimization_profiles)]

    def _range(self, name: str, profile: int) -> ProfileRange:
        try:
            shapes = [tuple(dims) for dims in self.engine.get_tensor_profile_shape(name, profile)]
        except (RuntimeError, TypeError, ValueError):
            shapes = []
        if len(shapes) == 3 and all(shape and min(shape) >= 0 for shape in shapes):
            return ProfileRange(*shapes)
        fixed = tuple(self.engine.get_tensor_shape(name))  # an input of static shape has no profile range
        if not fixed or min(fixed) < 0:
            raise ValueError(f"TensorRT reports no shape range for input {name}")
        return ProfileRange(fixed, fixed, fixed)

    def new_context(self, scratch: cuda.DeviceMemory, profile: int, stream: cuda.Stream, limit: int) -> Any:
        """An execution context on the lane's scratch memory, holding `profile`; never more than `limit` live
        contexts on one profile (TensorRT 8.6 logs an error and may crash past its limit, so it is not asked)."""
        trt = self.trt
        with self._lock:  # creating a context and choosing its profile, one thread at a time
            if self.engine is None:
                raise RuntimeError("the Engine is closed")
            if self._held.get(profile, 0) >= limit:
                raise RuntimeError(f"optimization profile {profile} already has {limit} execution context(s): "
                                   "TensorRT allows no more (a trtkit.runtime bug: lanes are made per profile)")
            if hasattr(trt, "ExecutionContextAllocationStrategy"):  # TensorRT 10 on
                context = self.engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
            else:
                context = self.engine.create_execution_context_without_device_memory()
            if context is None:
                raise RuntimeError("TensorRT could not create an execution context (its log above says why)")
            try:
                if hasattr(context, "set_device_memory"):
                    context.set_device_memory(scratch.ptr, scratch.nbytes)
                else:
                    context.device_memory = scratch.ptr
                # A new context holds profile 0 if it is free, else none: each selects its own, and checks it took.
                if self.dynamic and not context.set_optimization_profile_async(profile, stream.handle):
                    raise RuntimeError(f"TensorRT refused optimization profile {profile} to a new execution context "
                                       "(its log above says why; another context may hold it)")
                stream.synchronize()
            except BaseException:
                del context  # gone now, not when the traceback is: never after the engine
                raise
            self._held[profile] = self._held.get(profile, 0) + 1
        return context

    def forget(self, profile: int) -> None:
        """A context of this profile was dropped."""
        with self._lock:
            self._held[profile] -= 1

    def close(self) -> None:
        """Drop the engine, then the runtime (TensorRT's order), once every context is gone."""
        with self._lock:
            if any(self._held.values()):
                raise RuntimeError(f"execution contexts are still alive: {self._held}")
            self.engine = None
            self.runtime = None


class _Context:
    """The lane's execution context: its profile, and the input shapes and tensor addresses last set on it.

    Every TensorRT call that reports failure by returning False is checked: carrying on would run the engine in
    a state TensorRT did not take, which can crash the process rather than raise."""

    def __init__(self, loaded: _Loaded, scratch: cuda.DeviceMemory, profile: int, stream: cuda.Stream, limit: int):
        self.loaded = loaded
        self.profile = profile
        self.trt: Any = loaded.new_context(scratch, profile, stream, limit)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def use_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Set the input shapes that differ from those last set."""
        for name, shape in shapes.items():
            if self.shapes.get(name) != shape:
                self.shapes.pop(name, None)  # unknown until TensorRT takes it
                if not self.trt.set_input_shape(name, shape):
                    raise RuntimeError(f"TensorRT refused shape {list(shape)} for input {name} in optimization "
                                       f"profile {self.profile} (its log above says why)")
                self.shapes[name] = shape

    def set_shapes(self, shapes: dict[str, tuple[int, ...]], outputs: Sequence[TensorSpec]
                   ) -> dict[str, tuple[int, ...]]:
        """Set the input shapes; the output shapes that follow."""
        self.use_shapes(shapes)
        found = {spec.name: tuple(self.trt.get_tensor_shape(spec.name)) for spec in outputs}
        unknown = {name: shape for name, shape in found.items() if min(shape, default=0) < 0}
        if unknown:
            raise ValueError(f"outputs {unknown} have data-dependent shapes, which trtkit.runtime cannot size")
        return found

    def bind(self, addresses: dict[str, int]) -> None:
        for name, ptr in addresses.items():
            if self.addresses.get(name) != ptr:
                self.addresses.pop(name, None)
                if not self.trt.set_tensor_address(name, ptr):
                    raise RuntimeError(f"TensorRT refused the address of tensor {name} (its log above says why)")
                self.addresses[name] = ptr

    def execute(self, stream: cuda.Stream) -> bool:
        """Queue a run; False when TensorRT refused (under capture: the run cannot be captured)."""
        return bool(self.trt.execute_async_v3(stream.handle))

    def release(self) -> None:
        """Drop TensorRT's context, which frees its profile; its graphs must be gone, its engine still here."""
        if self.trt is not None:
            self.trt = None
            self.loaded.forget(self.profile)


# --- staging buffers and the lane --------------------------------------------

def nbytes(shape: Sequence[int], dtype: np.dtype) -> int:
    return volume(shape) * dtype.itemsize


def host_view(buffer: Any, dtype: np.dtype, shape: Sequence[int]) -> np.ndarray:
    """An array over the first bytes of a (pinned) buffer: writes go into the buffer."""
    return np.frombuffer(buffer, dtype=dtype, count=volume(shape)).reshape(tuple(shape))


def pinned_empty(shape: Sequence[int], dtype: Any = np.float32, device: int = 0) -> np.ndarray:
    """An uninitialised array in page-locked host memory, freed when the array (and every view of it) is gone.

    Fill it with your input (write into it: `x[:] = ...`, or read data into it) and pass it to predict(): a
    streamed batch is then copied to the GPU straight from it at the bus's speed, with no staging copy on the
    host. Worth it for large batches you make more than once; page-locked memory is taken from the host's RAM
    and cannot be swapped out."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    return host_view(cuda.owned_pinned_buffer(nbytes(shape, dtype), device), dtype, shape)


def copy_rows(target: np.ndarray, source: np.ndarray) -> None:
    """source into target (same shape): a plain memmove where a fill thread's share is copied without a cast
    between contiguous arrays (ctypes lets go of the GIL for it, whichever numpy this is), else np.copyto, casting
    within a kind (for a small copy that is five times quicker than reaching the pointers through ctypes)."""
    if (target.nbytes >= MIN_FILL_PART_BYTES and target.dtype == source.dtype and target.flags.c_contiguous
            and source.flags.c_contiguous):
        assert target.shape == source.shape, "copies are of equal rows"
        ctypes.memmove(target.ctypes.data, source.ctypes.data, target.nbytes)
    else:
        np.copyto(target, source, casting="same_kind")


def page_locked(array: np.ndarray, spec: TensorSpec) -> bool:
    """Whether the GPU can copy this input straight from the caller's array: page-locked memory, laid out as the
    engine takes it (C order, the engine's dtype)."""
    return (array.dtype == spec.engine_dtype and array.flags.c_contiguous
            and cuda.is_page_locked(array.ctypes.data, array.nbytes))


class _Staging:
    """A pinned host buffer and a device buffer per tensor, of the given sizes."""

    def __init__(self, sizes: dict[str, int]):
        self.sizes = dict(sizes)
        self.host: dict[str, cuda.PinnedMemory] = {}
        self.device: dict[str, cuda.DeviceMemory] = {}
        try:
            for name, size in sizes.items():
                self.host[name] = cuda.PinnedMemory(size)
                self.device[name] = cuda.DeviceMemory(size)
        except BaseException:
            self.free()
            raise

    def holds(self, sizes: dict[str, int]) -> bool:
        return all(self.sizes.get(name, -1) >= size for name, size in sizes.items())

    def view(self, name: str, dtype: np.dtype, shape: Sequence[int]) -> np.ndarray:
        return host_view(self.host[name].buffer, dtype, shape)

    def addresses(self) -> dict[str, int]:
        return {name: memory.ptr for name, memory in self.device.items()}

    def free(self) -> None:
        for memory in list(self.host.values()) + list(self.device.values()):
            memory.free()


def finish(futures: Sequence[Future], quietly: bool = False) -> None:
    """Wait for all the futures (one failing does not leave the others running), then raise the first failure
    unless quietly."""
    if not futures:  # copies made on the calling thread: concurrent.futures.wait of none still takes a few µs
        return
    wait_futures(futures)
    if not quietly:
        for future in futures:
            future.result()


@dataclass
class _Filling:
    """A streamed chunk's fill under way: where the GPU copies each input's chunk from, once the copies are done."""
    sources: dict[str, int]
    copies: list[Future]

    def wait(self, quietly: bool = False) -> dict[str, int]:
        finish(self.copies, quietly)
        return self.sources


class _Slot:
    """One streamed chunk's buffers, and the events that order its copy-in, run and copy-out."""

    def __init__(self, sizes: dict[str, int]):
        self.staging = _Staging(sizes)
        self.uploaded, self.computed, self.downloaded = cuda.Event(), cuda.Event(), cuda.Event()

    def free(self) -> None:
        self.staging.free()
        for event in (self.uploaded, self.computed, self.downloaded):
            event.destroy()


@dataclass
class _Views:
    """Arrays over the small buffers at one call's shapes, by tensor name."""
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


@dataclass
class _Graph:
    graph: cuda.GraphExec  # copy-in, run and copy-out on the lane's small buffers, at one input shape
    views: _Views          # what a replay fills and reads, made once: making them was much of a small call's time


def _release_graph(entry: _Graph) -> None:
    entry.graph.destroy()


@dataclass(frozen=True)
class _Options:
    graphs: bool
    graph_cache_size: int
    small_batch_bytes: int
    stream_chunk_bytes: int
    fill_threads: int
    time_device: bool

    def __post_init__(self) -> None:
        if min(self.graph_cache_size, self.stream_chunk_bytes, self.fill_threads) < 1 or self.small_batch_bytes < 0:
            raise ValueError("graph_cache_size, stream_chunk_bytes and fill_threads must be 1 or more, "
                             "small_batch_bytes 0 or more")


class _Lane:
    """What one predict() at a time on one optimization profile uses: streams, scratch memory, one execution
    context (the profile's, or one of them), buffers, and the CUDA graphs captured on that context."""

    def __init__(self, loaded: _Loaded, profile: int, limit: int, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 options: _Options, fill: ThreadPoolExecutor):
        self.loaded, self.inputs, self.outputs, self.options, self.fill = loaded, inputs, outputs, options, fill
        self.profile = profile
        self.graphs = GraphCache(options.graph_cache_size, _release_graph)
        self.graph_failure = None if options.graphs else "graphs=False"
        self.small: _Staging | None = None
        self.slots: list[_Slot] = []
        self.device_ms: float | None = None   # the GPU time of the last call, with options.time_device
        with ExitStack() as undo:  # a lane that cannot be made in full frees what it made
            self.compute, self.upload, self.download = (self._stream(undo) for _ in range(3))
            self.started, self.finished = (self._event(undo) for _ in range(2))
            self.scratch = cuda.DeviceMemory(loaded.scratch_bytes)
            undo.callback(self.scratch.free)
            self.context = _Context(loaded, self.scratch, profile, self.compute, limit)
            undo.pop_all()

    @staticmethod
    def _stream(undo: ExitStack) -> cuda.Stream:
        stream = cuda.Stream()
        undo.callback(stream.destroy)
        return stream

    def _event(self, undo: ExitStack) -> cuda.Event | None:
        """An event with timing, for options.time_device; None without (nothing is timed)."""
        if not self.options.time_device:
            return None
        event = cuda.Event(timing=True)
        undo.callback(event.destroy)
        return event

    def _mark(self, event: cuda.Event | None, stream: cuda.Stream) -> None:
        if event is not None:
            event.record(stream)

    def _timed(self) -> None:
        """The GPU time from `started` to `finished` (both marked on this call), into device_ms."""
        if self.started is not None and self.finished is not None:
            self.finished.synchronize()
            self.device_ms = self.finished.milliseconds_since(self.started)

    def run(self, plan: CallPlan, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert plan.profile == self.profile, "a lane runs its own profile only"
        try:
            if plan.small:
                return self._run_small(plan, arrays)
            return self._run_streamed(plan, arrays)
        except BaseException:
            self._settle()
            raise

    # small batches: one run from the small buffers, replayed as a CUDA graph

    @property
    def _small(self) -> _Staging:
        assert self.small is not None, "the small buffers are made before the first small run"
        return self.small

    def _run_small(self, plan: CallPlan, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One run from the small buffers: a graph replay when this shape has one, else a run of TensorRT, then
        (graphs on) the same captured for the next call at this shape. Inputs already page-locked go to the GPU
        straight from the caller's array, ahead of the graph (their addresses change from call to call), so
        graphs are kept per shape and per set of such inputs."""
        shapes = {name: array.shape for name, array in arrays.items()}
        direct = self._page_locked_inputs(arrays)
        key = (tuple(shapes[spec.name] for spec in self.inputs), direct)
        context = self.context
        entry = self.graphs.get(key)
        if entry is not None:
            self._stage(arrays, entry.views.inputs, direct)
            # The graph holds the run as captured at these shapes; the context (which later calls may have set to
            # other shapes and buffers) is set back to them first, so that it agrees with what replays.
            context.use_shapes(shapes)
            context.bind(self._small.addresses())
            self._mark(self.started, self.compute)
            self._upload_direct(arrays, direct)
            entry.graph.launch(self.compute)
            self._mark(self.finished, self.compute)
            self.compute.synchronize()
            self._timed()
            return self._unstage(entry.views.outputs)
        output_shapes = context.set_shapes(shapes, self.outputs)
        self._ensure_small(shapes, output_shapes, plan.buffer_rows)
        context.bind(self._small.addresses())
        views = self._views(shapes, output_shapes)
        self._stage(arrays, views.inputs, direct)
        # The first run at these shapes also does TensorRT's set-up for them, which must not be captured.
        self._mark(self.started, self.compute)
        self._upload_direct(arrays, direct)
        if not self._enqueue_small(shapes, output_shapes, direct):
            raise RuntimeError("TensorRT failed to run the engine (its log above says why)")
        self._mark(self.finished, self.compute)
        self.compute.synchronize()
        self._timed()
        results = self._unstage(views.outputs)
        if self.graph_failure is None:
            self._capture(key, shapes, output_shapes, views, direct)
        return results

    def _page_locked_inputs(self, arrays: dict[str, np.ndarray]) -> frozenset:
        """The inputs the GPU copies straight from the caller's arrays (page_locked), small batch or streamed."""
        return frozenset(spec.name for spec in self.inputs if page_locked(arrays[spec.name], spec))

    def _ensure_small(self, shapes: dict, output_shapes: dict, rows: int) -> None:
        """Small buffers that hold this call, made for `rows` rows; graphs recorded on the buffers they replace
        go with them."""
        needed = self._sizes(shapes, output_shapes)
        if self.small is not None and self.small.holds(needed):
            return
        batch = batch_of(shapes)
        self.graphs.clear()
        if self.small is not None:
            self.small.free()
            self.small = None
        # Made for `rows` rows; a tensor without the batch first (its size does not grow with it) keeps its own.
        self.small = _Staging({name: max(size, size // batch * rows) for name, size in needed.items()})

    def _sizes(self, shapes: dict, output_shapes: dict) -> dict[str, int]:
        """Bytes of each input and output at these shapes."""
        return {spec.name: nbytes(found[spec.name], spec.engine_dtype)
                for specs, found in ((self.inputs, shapes), (self.outputs, output_shapes)) for spec in specs}

    def _views(self, shapes: dict, output_shapes: dict) -> _Views:
        small = self._small
        return _Views({spec.name: small.view(spec.name, spec.engine_dtype, shapes[spec.name]) for spec in self.inputs},
                      {spec.name: small.view(spec.name, spec.engine_dtype, output_shapes[spec.name])
                       for spec in self.outputs})

    def _stage(self, arrays: dict[str, np.ndarray], targets: dict[str, np.ndarray], direct: frozenset) -> None:
        """The inputs, but the `direct` ones, into their views of the small pinned buffers; a batch of some
        megabytes in parallel (the fill threads)."""
        copies = []
        for name, target in targets.items():
            if name not in direct:
                copies += self._parts(target, arrays[name], target[:1].nbytes)
        self._copy(copies)

    def _upload_direct(self, arrays: dict[str, np.ndarray], direct: frozenset) -> None:
        """The page-locked inputs, copied to the GPU from the caller's arrays on the compute stream."""
        for name in direct:
            self.compute.upload(self._small.device[name].ptr, arrays[name].ctypes.data, arrays[name].nbytes)

    def _unstage(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copies of the outputs' views (the buffers are reused), float16 made float32."""
        return {spec.name: outputs[spec.name].astype(spec.dtype) for spec in self.outputs}

    def _enqueue_small(self, shapes: dict, output_shapes: dict, direct: frozenset) -> bool:
        """Copy in (but the `direct` inputs), run, copy out, all on the compute stream; False when TensorRT refused
        to run."""
        small = self._small
        for spec in self.inputs:
            if spec.name in direct:
                continue
            self.compute.upload(small.device[spec.name].ptr, small.host[spec.name].ptr,
                                nbytes(shapes[spec.name], spec.engine_dtype))
        ran = self.context.execute(self.compute)
        for spec in self.outputs:
            self.compute.download(small.host[spec.name].ptr, small.device[spec.name].ptr,
                                  nbytes(output_shapes[spec.name], spec.engine_dtype))
        return ran

    def _capture(self, key: tuple, shapes: dict, output_shapes: dict, views: _Views, direct: frozenset) -> None:
        try:
            graph = self._record(shapes, output_shapes, direct)
            why = "TensorRT's run could not be captured"
        except cuda.CudaError as e:
            graph, why = None, str(e)
        if graph is None:
            self.graph_failure = why
            warnings.warn(f"trtkit.runtime: CUDA graphs are off for this engine ({why}); small batches run "
                          "without them", RuntimeWarning, stacklevel=5)
            return
        self.graphs.put(key, _Graph(graph, views))

    def _record(self, shapes: dict, output_shapes: dict, direct: frozenset) -> cuda.GraphExec | None:
        """The copy-in, run and copy-out, recorded (not run) as a CUDA graph; None when not capturable."""
        cuda.begin_capture(self.compute)
        try:
            ran = self._enqueue_small(shapes, output_shapes, direct)
        except BaseException:
            captured = cuda.end_capture(self.compute)
            if captured is not None:
                cuda.destroy_graph(captured)
            raise
        graph = cuda.end_capture(self.compute)
        if graph is None:
            return None
        try:
            return cuda.GraphExec(graph) if ran else None
        finally:
            cuda.destroy_graph(graph)

    # larger batches: chunks streamed through pinned buffers on three streams

    def _run_streamed(self, plan: CallPlan, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        context = self.context
        samples = {name: tuple(array.shape[1:]) for name, array in arrays.items()}
        full = {name: (plan.buffer_rows,) + sample for name, sample in samples.items()}
        output_shapes = context.set_shapes(full, self.outputs)
        not_batched = [name for name, shape in output_shapes.items() if not shape or shape[0] != plan.buffer_rows]
        if not_batched:
            raise ValueError(f"outputs {not_batched} do not have the batch first, so the batch cannot be split "
                             "into runs; pass at most the profile's largest batch")
        self._ensure_slots(self._sizes(full, output_shapes))
        batch = plan.chunks[-1][1]
        results = {spec.name: np.empty((batch,) + output_shapes[spec.name][1:], spec.dtype) for spec in self.outputs}
        direct = self._page_locked_inputs(arrays)
        in_flight: deque = deque()   # (slot, start, stop) of the chunks queued on the GPU, oldest first
        self._mark(self.started, self.upload)
        filling = self._fill(self.slots[0], arrays, *plan.chunks[0], direct)
        try:
            for index, (start, stop) in enumerate(plan.chunks):
                slot, sources = self.slots[index % len(self.slots)], filling.wait()
                if index + 1 < len(plan.chunks):
                    # The next chunk fills on the fill threads while this one is queued: TensorRT's enqueue of a
                    # chunk takes about half a millisecond of this thread.
                    following = self.slots[(index + 1) % len(self.slots)]
                    while in_flight and in_flight[0][0] is following:
                        self._collect(in_flight.popleft(), results)
                    filling = self._fill(following, arrays, *plan.chunks[index + 1], direct)
                self._launch(slot, context, samples, stop - start, sources)
                in_flight.append((slot, start, stop))
        finally:
            filling.wait(quietly=True)  # no fill thread may still write into a slot once this call is over
        self._mark(self.finished, self.download)
        while in_flight:
            self._collect(in_flight.popleft(), results)
        self._timed()
        return results

    def _ensure_slots(self, sizes: dict[str, int]) -> None:
        if self.slots and all(slot.staging.holds(sizes) for slot in self.slots):
            return
        self._free_slots()
        for _ in range(STREAM_SLOTS):
            self.slots.append(_Slot(sizes))

    def _fill(self, slot: _Slot, arrays: dict[str, np.ndarray], start: int, stop: int, direct: frozenset) -> _Filling:
        """Start copying the chunk's rows of every input into the slot's pinned buffers (cast to the engine's
        types), except the inputs in `direct`, already page-locked. Its wait() returns where each input's chunk is
        copied to the GPU from, once they are there."""
        copies, sources = [], {}
        for spec in self.inputs:
            source = arrays[spec.name]
            if spec.name in direct:
                sources[spec.name] = source.ctypes.data + start * source[:1].nbytes
                continue
            target = slot.staging.view(spec.name, spec.engine_dtype, (stop - start,) + source.shape[1:])
            copies += self._parts(target, source[start:stop], target[:1].nbytes)
            sources[spec.name] = slot.staging.host[spec.name].ptr
        return _Filling(sources, self._start_copy(copies))

    def _launch(self, slot: _Slot, context: _Context, samples: dict, rows: int, sources: dict[str, int]) -> None:
        """Queue the chunk's copy-in (from `sources`), run and copy-out; each stream waits on the GPU for the step
        before."""
        staging = slot.staging
        for spec in self.inputs:
            self.upload.upload(staging.device[spec.name].ptr, sources[spec.name],
                               nbytes((rows,) + samples[spec.name], spec.engine_dtype))
        slot.uploaded.record(self.upload)
        self.compute.wait(slot.uploaded)
        shapes = {name: (rows,) + sample for name, sample in samples.items()}
        if any(context.shapes.get(name) != shape for name, shape in shapes.items()):
            self.compute.synchronize()  # shapes change between runs, never under one still running
        output_shapes = context.set_shapes(shapes, self.outputs)
        context.bind(staging.addresses())
        if not context.execute(self.compute):
            raise RuntimeError("TensorRT failed to run the engine (its log above says why)")
        slot.computed.record(self.compute)
        self.download.wait(slot.computed)
        for spec in self.outputs:
            self.download.download(staging.host[spec.name].ptr, staging.device[spec.name].ptr,
                                   nbytes(output_shapes[spec.name], spec.engine_dtype))
        slot.downloaded.record(self.download)

    def _collect(self, done: tuple[_Slot, int, int], results: dict[str, np.ndarray]) -> None:
        """Wait for a chunk's copy-out, then its rows into the results (float16 becomes float32 here)."""
        slot, start, stop = done
        slot.downloaded.synchronize()
        copies = []
        for spec in self.outputs:
            target = results[spec.name][start:stop]
            source = slot.staging.view(spec.name, spec.engine_dtype, target.shape)
            copies += self._parts(target, source, source[:1].nbytes)
        self._copy(copies)

    def _parts(self, target: np.ndarray, source: np.ndarray, row_bytes: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(target, source) of equal rows, split by rows into parts for the fill threads (row_bytes: of the pinned
        side, which sets how many parts are worth it)."""
        return [(target[low:high], source[low:high])
                for low, high in split_rows(len(target), row_bytes, self.options.fill_threads)]

    def _copy(self, copies: list[tuple[np.ndarray, np.ndarray]]) -> None:
        finish(self._start_copy(copies))

    def _start_copy(self, copies: list[tuple[np.ndarray, np.ndarray]]) -> list[Future]:
        """The copies: made here when there is one or they are small (no futures back), else handed to the fill
        threads (their futures back)."""
        if len(copies) <= 1 or sum(target.nbytes for target, _ in copies) < MIN_FILL_PART_BYTES:
            for target, source in copies:
                copy_rows(target, source)
            return []
        return [self.fill.submit(copy_rows, target, source) for target, source in copies]

    def _settle(self) -> None:
        """After a failure: let queued work finish, so no copy lands in a buffer the next call reuses."""
        for stream in (self.upload, self.compute, self.download):
            try:
                stream.synchronize()
            except cuda.CudaError:
                pass

    def _free_slots(self) -> None:
        for slot in self.slots:
            slot.free()
        self.slots = []

    def close(self) -> None:
        """Graphs first (they replay the context's work), then the context, then the memory it used."""
        self._settle()
        self.graphs.clear()
        self.context.release()
        self._free_slots()
        if self.small is not None:
            self.small.free()
            self.small = None
        self.scratch.free()
        for stream in (self.upload, self.compute, self.download):
            stream.destroy()
        for event in (self.started, self.finished):
            if event is not None:
                event.destroy()


# --- the engine ---------------------------------------------------------------

class Engine:
    """A trtkit engine, ready to predict; see the module's docstring. Close it (or use `with`) to free the GPU
    memory, pinned memory and threads it holds.

    path: a trtkit output folder (model.plan and trtkit.json), or a .plan file (checked against a trtkit.json
    beside it when that lists it). device: the GPU's index. graphs: replay small batches as CUDA graphs.
    graph_cache_size: graphs kept per lane. max_lanes: predict() calls that run at once, at most one per
    optimization profile (TensorRT's limit of one execution context a profile). fill_threads: threads
    that copy chunks between your arrays and pinned memory. small_batch_bytes: input bytes up to which a batch
    is one run from the small buffers (a graph). stream_chunk_bytes: input bytes per streamed chunk.
    check: compare the engine with trtkit.json before loading it. time_device: time each call's work on the GPU
    (copies in and out included) with CUDA events; last_device_ms then holds the last finished call's.
    """

    def __init__(self, path: str | os.PathLike, *, device: int = 0, graphs: bool = True,
                 graph_cache_size: int = 16, max_lanes: int = 2, fill_threads: int | None = None,
                 small_batch_bytes: int = SMALL_BATCH_BYTES, stream_chunk_bytes: int = STREAM_CHUNK_BYTES,
                 check: bool = True, time_device: bool = False,
                 _probe: Callable[[int], Host] = probe_host):
        self._options = _Options(graphs, graph_cache_size, small_batch_bytes, stream_chunk_bytes,
                                 min(FILL_THREADS, os.cpu_count() or 1) if fill_threads is None else fill_threads,
                                 time_device)
        self.last_device_ms: float | None = None
        if max_lanes < 1:
            raise ValueError("max_lanes must be at least 1")
        plan_path, manifest_path = locate(os.fspath(path))
        with open(plan_path, "rb") as f:
            plan = f.read()
        manifest = load_manifest(manifest_path, os.path.basename(plan_path), check)
        self.device = device
        self.host = _probe(device)  # before TensorRT loads anything: its own errors say less
        self.built = manifest.built if manifest is not None else None
        if check and manifest is not None:
            check_plan_digest(plan, manifest, plan_path)
            tuned_elsewhere = compatibility(manifest.built, self.host)
            if tuned_elsewhere:
                warnings.warn(tuned_elsewhere, RuntimeWarning, stacklevel=2)
        require_supported_tensorrt(self.host.tensorrt)
        trt = _import_tensorrt()
        with cuda.current(device):
            self._loaded = _Loaded(trt, plan)
        self.inputs, self.outputs = self._specs(manifest, check)
        self.profiles = self._loaded.profiles(self.inputs)
        per_profile = self._loaded.contexts_per_profile(max_lanes)
        self._lanes = LanePool(functools.partial(self._new_lane, per_profile), max_lanes, per_profile)  # on first use
        self._fill = ThreadPoolExecutor(self._options.fill_threads, "trtkit-fill")
        self._closing = threading.Lock()
        # Plans by shape (pure, and thread-safe to cache): working one out was a fifth of a small call's host time.
        self._plan = functools.lru_cache(maxsize=graph_cache_size)(self._plan_for)

    def _specs(self, manifest: Manifest | None, check: bool) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """The inputs and outputs by the manifest's names; with check off, by the engine's own where those do not
        match it."""
        try:
            return tensor_specs(self._loaded.io(), manifest.names if manifest else None)
        except IncompatibleEngine as e:
            if check:
                raise
            warnings.warn(f"trtkit.runtime: {e}; check=False, so the engine's own names are used", RuntimeWarning,
                          stacklevel=3)
            return tensor_specs(self._loaded.io(), None)

    def _plan_for(self, shapes_in_order: tuple[tuple[int, ...], ...]) -> CallPlan:
        """How a call with these input shapes (in input order) runs; kept per shape by __init__'s cache."""
        shapes = {spec.name: shape for spec, shape in zip(self.inputs, shapes_in_order)}
        row_bytes = sum(nbytes(shapes[spec.name][1:], spec.engine_dtype) for spec in self.inputs)
        return plan_call(self.profiles, shapes, row_bytes, self._options.small_batch_bytes,
                         self._options.stream_chunk_bytes)

    def _new_lane(self, limit: int, profile: int) -> _Lane:
        return _Lane(self._loaded, profile, limit, self.inputs, self.outputs, self._options, self._fill)

    def predict(self, x: Any, as_dict: bool = False) -> Any:
        """Outputs for inputs x: an array (one input), a list by position, or a dict by engine or Keras name.

        Returns one array, or a list in the model's output order (as_dict: a dict by output name)."""
        arrays = map_inputs(x, self.inputs)
        check_dtypes(arrays, self.inputs)
        plan = self._plan(tuple(tuple(int(d) for d in arrays[spec.name].shape) for spec in self.inputs))
        with cuda.current(self.device), self._lanes.lane(plan.profile) as lane:
            results = lane.run(plan, arrays)
            self.last_device_ms = lane.device_ms
        return arrange_outputs(results, self.outputs, as_dict)

    def pinned_copy(self, x: Any) -> dict[str, np.ndarray]:
        """Page-locked copies of inputs x (as predict() takes them) in the engine's types, by engine name:
        predict() copies them to the GPU straight from where they are. For inputs you send more than once; float32
        data for an engine with float16 inputs (build --io-precision fp16) is converted here, once."""
        arrays = map_inputs(x, self.inputs)
        check_dtypes(arrays, self.inputs)
        copies = {}
        for spec in self.inputs:
            copies[spec.name] = pinned_empty(arrays[spec.name].shape, spec.engine_dtype, self.device)
            copy_rows(copies[spec.name], arrays[spec.name])
        return copies

    def close(self) -> None:
        """Wait for running calls, then free the lanes (their graphs, contexts and memory), the engine, its runtime
        and the fill threads, in that order. Calls from several threads at once free them once, in turn."""
        with self._closing, cuda.current(self.device):
            self._lanes.close(_Lane.close)
            self._loaded.close()
            self._fill.shutdown()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
