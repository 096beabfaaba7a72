"""The contract between the host (toolkit/) and the in-container steps, written once.

The host loads this same file (toolkit/contract.py), so a change here changes
both sides. Standard library only, Python 3.6-safe: it runs in every image.

Nothing of the host is mounted into a build container. The host fills one
Docker volume at ROOT with put_archive (scripts, the model, the user's data,
plan.json, cache entries) and reads back, with get_archive, only what this
contract names: the target's artifacts, failure evidence, cache files. The
container is not trusted: a Keras model can run its own code when it loads.
"""
import json
import math
import re

# --- the container's file layout ---------------------------------------------
ROOT = "/trtkit"
SCRIPTS = ROOT + "/scripts"
MODEL_DIR = ROOT + "/model"
DATA_DIR = ROOT + "/data"
WORK = ROOT + "/work"
PLAN = "plan.json"          # the following names are inside WORK
IO = "io.json"              # node names, written by the keras stage (or by the host for `trtkit bench OUT`)
ARTIFACTS = "artifacts"
EVIDENCE = "evidence"       # a failed verification's arrays
CACHE = "cache"             # TensorRT timing and calibration caches of this model
# The reference every artifact is verified against: sample inputs and the source model's outputs on them.
# They are artifacts too, so a later build from this output (two-stage: export here, engine on a GPU host)
# verifies against the same reference without TensorFlow.
REFERENCE_INPUTS = "reference-inputs.npz"
REFERENCE_OUTPUTS = "reference-outputs.npz"

# --- what comes back ----------------------------------------------------------
# target -> (artifacts it must produce, artifacts it may produce). Nothing else is accepted.
_REFERENCE = (REFERENCE_INPUTS, REFERENCE_OUTPUTS)
TARGET_ARTIFACTS = {
    "onnx": (("model.onnx",) + _REFERENCE, ("bench.png",)),
    "frozen": (("model.pb",) + _REFERENCE, ("model.onnx", "bench.png")),
    # timing.cache: the tactic timings the engine was built from, to replay in a rebuild (--timing-cache)
    "engine": (("model.onnx", "model.plan", "timing.cache") + _REFERENCE, ("calibration.cache", "bench.png")),
    "tftrt": (("model.pb", "model.onnx", "model.tftrt") + _REFERENCE, ("bench.png",)),
}
ARTIFACT_KINDS = {"model.onnx": "onnx", "model.pb": "frozen", "model.plan": "engine",
                  "calibration.cache": "calibration-cache", "timing.cache": "timing-cache",
                  "model.tftrt": "tftrt-savedmodel", "bench.png": "chart",
                  REFERENCE_INPUTS: "reference-inputs", REFERENCE_OUTPUTS: "reference-outputs"}
FOLDER_ARTIFACTS = ("model.tftrt",)        # a SavedModel: regular files and folders only
CHART = "bench.png"
EVIDENCE_FILES = ("inputs.npz", "expected.npz", "actual.npz")
CACHE_FILE = re.compile(r"^(timing-[A-Za-z0-9._-]{1,160}|calibration-[0-9a-f]{32})\.cache$")
MAX_CACHE_FILE_BYTES = 256 << 20
MAX_EVIDENCE_FILE_BYTES = 1 << 30

# --- events: `::trtkit::{json}` lines on stdout ---------------------------------
EVENT_PREFIX = "::trtkit::"
MAX_LINE_BYTES = 1 << 20    # longer lines are cut: a model can print anything
FINAL_EVENT = "done"        # the pipeline's last event; exit 0 without it is a failure

# --- exit codes of a step process (the host maps them to its own) ---------------
EXIT_STEP_FAILED = 3
EXIT_INVALID_MODEL = 4
EXIT_VERIFY_FAILED = 5
EXIT_UNSUPPORTED = 6
EXIT_UNTRUSTED_MODEL = 7

TARGETS = tuple(TARGET_ARTIFACTS)
# Model formats. A Keras model goes through the keras stage. An ONNX file is checked and gets its
# reference from ONNX Runtime (onnx_import). A trtkit output folder is already exported and carries its
# reference and names, so only the engine is left to build: the container needs TensorRT and numpy alone.
KERAS_FORMATS = ("h5", "keras", "savedmodel")
ONNX_FORMAT = "onnx"
OUTPUT_FORMAT = "trtkit-output"
EXPORTED_TARGETS = {ONNX_FORMAT: ("onnx", "engine"), OUTPUT_FORMAT: ("engine",)}


def model_path(model_format, file_name):
    """Where MODEL is in the container: a trtkit output's model.onnx is already one of the artifacts."""
    if model_format == OUTPUT_FORMAT:
        return WORK + "/" + ARTIFACTS + "/model.onnx"
    return MODEL_DIR + "/" + file_name
PRECISIONS = ("fp32", "fp16", "int8")   # strict FP32 unless --tf32
IO_PRECISIONS = ("fp32", "fp16")         # of an engine's float inputs and outputs (--io-precision)
MODES = ("build", "inspect", "bench", "check")


def allowed_artifacts(target, bench):
    """Names the host accepts from a build of this target."""
    required, optional = TARGET_ARTIFACTS[target]
    return tuple(required) + tuple(name for name in optional if bench or name != CHART)


# --- plan.json: written by the host (BuildPlan.container_plan), read by every stage --
PLAN_KEYS = ("model", "model_format", "trust_model", "target", "mode", "precision", "tf32", "shapes", "sample_data",
             "calib_data", "atol", "workspace", "opset", "bench", "seed", "cache_dir", "disabled_tactic_sources",
             "timing_cache", "strict_timing_cache", "typical_batch", "exact_batches", "optimization_level",
             "unroll_lstm", "io_precision")


class PlanMismatch(ValueError):
    """plan.json was written by a host that does not share this contract."""


def read_plan(path):
    """plan.json, strictly: a missing or unknown key means the two sides disagree, and is an error."""
    with open(path) as f:
        plan = json.load(f)
    missing = sorted(set(PLAN_KEYS) - set(plan))
    unknown = sorted(set(plan) - set(PLAN_KEYS))
    if missing or unknown or plan["target"] not in TARGETS or plan["mode"] not in MODES:
        raise PlanMismatch("plan.json does not match this trtkit's contract (missing %s, unknown %s, target %r, "
                         "mode %r)" % (missing, unknown, plan.get("target"), plan.get("mode")))
    return plan


# --- which steps run: the one table ----------------------------------------------
# target -> (what the keras stage makes, the stages that run after it)
TARGET_STEPS = {
    "onnx": (("model.onnx",), ("onnx_stage",)),
    "frozen": (("model.pb",), ()),
    "engine": (("model.onnx",), ("onnx_stage", "engine")),
    "tftrt": (("model.pb", "model.onnx"), ("onnx_stage", "tftrt")),
}


def keras_outputs(plan):
    """What the keras stage exports; a bench also needs the ONNX model (ONNX Runtime is timed)."""
    made = TARGET_STEPS[plan["target"]][0]
    return made + ("model.onnx",) if plan["bench"] and "model.onnx" not in made else made


def stages(plan):
    """The stage modules a plan runs, in order (each is scripts/trtkit_steps/<name>.py)."""
    if plan["mode"] == "inspect":
        return ["keras_stage"]
    if plan["mode"] == "bench":
        return ["bench"]
    if plan["mode"] == "check":
        return ["engine_check"]
    if plan["model_format"] == OUTPUT_FORMAT:
        return ["engine"]
    if plan["model_format"] == ONNX_FORMAT:
        return ["onnx_import"] + (["engine"] if plan["target"] == "engine" else [])
    later = list(TARGET_STEPS[plan["target"]][1])
    if plan["bench"]:
        later = (["onnx_stage"] if "onnx_stage" not in later else []) + later + ["bench"]
    return ["keras_stage"] + later


# The steps each stage module times (common.step), in order. A step's start re-arms the host's --timeout, and
# the container can print any start it likes: the host re-arms only for these steps of the stages a plan runs.
STAGE_STEPS = {
    "keras_stage": ("inspect", "freeze", "reference", "verify-frozen", "export"),
    "onnx_import": ("inspect", "reference"),
    "onnx_stage": ("verify-onnx",),
    "engine": ("engine-build", "verify-engine"),
    "tftrt": ("tftrt-convert", "verify-tftrt"),
    "bench": ("bench",),
    "engine_check": ("engine-check",),
}


def steps(plan):
    """The steps a plan may start, in order (a name twice when two of its stages time it)."""
    return [name for stage in stages(plan) for name in STAGE_STEPS[stage]]


# --- bench settings: defaults and bounds for both sides ----------------------------
BENCH_DEFAULTS = {"batches": [1, 64, 1024], "iterations": 50, "warmup": 5}
BENCH_BOUNDS = {"batch": (1, 2**31 - 1), "iterations": (1, 100000), "warmup": (0, 10000)}


def bench_settings(bench):
    """The plan's bench value with defaults filled in (true: all defaults); ValueError names what is wrong."""
    if bench is True:
        bench = {}
    if not isinstance(bench, dict):
        raise ValueError("bench settings must be an object, not %r" % (bench,))
    settings = dict(BENCH_DEFAULTS, **bench)
    batches = settings["batches"]
    if not isinstance(batches, list) or not batches:
        raise ValueError("bench batches must be a non-empty list, not %r" % (batches,))
    for what, values in (("batch", batches), ("iterations", [settings["iterations"]]),
                         ("warmup", [settings["warmup"]])):
        low, high = BENCH_BOUNDS[what]
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError("bench %s must be a whole number from %d to %d, not %r" % (what, low, high, value))
    settings["batches"] = sorted(set(batches), key=batches.index)    # repeats dropped, order kept
    return settings


# --- event shapes ----------------------------------------------------------------
# Every field the host reads (report, manifest, triton, session, engine_check) is checked here with its type:
# a model prints what it likes, and an event that passes must never make the host fail on a missing key.
def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _real(value):
    """A number a float holds, NaN and infinity included: an output that is NaN has a NaN error."""
    if not _number(value):
        return False
    try:
        float(value)
    except OverflowError:   # a 400-digit integer: no format string takes it
        return False
    return True


def _finite(value):
    return _real(value) and math.isfinite(value)


def _optional(check):
    return lambda value: value is None or check(value)


def _size(value):
    """A whole number a shape, a batch or a count can have."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 63


def _text(value):
    return isinstance(value, str)


def _flag(value):
    return isinstance(value, bool)


def _mapping(value):
    return isinstance(value, dict)


def _list_of(check, non_empty=False):
    return lambda value: isinstance(value, list) and (bool(value) or not non_empty) and all(check(v) for v in value)


def _record(required, optional=None):
    """A dict with every required key passing its check, and each optional key, when present, passing its own."""
    optional = optional or {}
    return lambda value: isinstance(value, dict) and all(check(value.get(k)) for k, check in required.items()) \
        and all(check(value[k]) for k, check in optional.items() if k in value)


_SHAPE = _list_of(_optional(_size))          # None: a dimension of unknown size
_NAMES = {"name": _text, "keras_tensor": _text, "frozen": _text, "imported": _text}
_INPUT = _record(dict(_NAMES, shape=_SHAPE, dtype=_text))
_OUTPUT = _record(_NAMES, {"shape": _SHAPE, "dtype": _text})     # both absent in outputs of older manifests
_PROFILE = _record({which: _list_of(_size, non_empty=True) for which in ("min", "opt", "max")})
_TIMINGS = {"median_ms": _finite, "p90_ms": _finite, "p99_ms": _finite}
_ROW_EXTRAS = {"device": _optional(_text), "throughput_per_s": _optional(_finite),
               "speedup_vs_predict": _optional(_finite), "max_abs_err": _optional(_real)}
_ROW_KEYS = {"batch": _size, "framework": _text, "mode": _text}


def _bench_row(row):
    """A row of timings, or of the error that stopped the framework at that batch (then it has no timings)."""
    if isinstance(row, dict) and row.get("error") is not None:
        return _text(row["error"]) and _record(_ROW_KEYS, _ROW_EXTRAS)(row)
    return _record(dict(_ROW_KEYS, **_TIMINGS), _ROW_EXTRAS)(row)


def _profiles(value):
    return isinstance(value, dict) and bool(value) and all(_text(k) and _PROFILE(v) for k, v in value.items())


EVENT_FIELDS = {
    "versions": {},
    "names": {"inputs": _list_of(_INPUT), "outputs": _list_of(_OUTPUT), "params": _size},
    "step_start": {"step": _text},
    "step_end": {"step": _text, "seconds": _finite, "ok": _flag},
    "verified": {"artifact": _text, "outputs": _mapping, "max_abs_err": _real, "atol": _optional(_finite),
                 "passed": _flag},
    "artifact": {"name": _text, "kind": _text},
    "engine": {"tensorrt": _text, "gpu": _text, "compute_capability": _text, "profiles": _profiles,
               "portability_note": _text},
    "bench": {"device": _text, "rows": _list_of(_bench_row)},
    "engine_check": {"tensorrt": _text, "gpu": _text, "compute_capability": _text, "loadable": _flag,
                     "error": _optional(_text)},
    "error": {"message": _text},
    "done": {},
}


def check_event(event):
    """The event when it has the shape its kind needs, else None (unknown kinds too)."""
    if not isinstance(event, dict) or not _text(event.get("event")):
        return None
    fields = EVENT_FIELDS.get(event["event"])
    if fields is None:
        return None
    if all(check(event.get(name)) for name, check in fields.items()):
        return event
    return None
