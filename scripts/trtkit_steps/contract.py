"""The contract between the host (toolkit/) and the in-container steps, written once.

The host imports this same module (`from trtkit_steps import contract`), so a
change here changes both sides. Standard library only, Python 3.6-safe: it runs in every image.

Nothing of the host is mounted into a build container. The host fills one
Docker volume at ROOT with put_archive (scripts, the model, the user's data,
plan.json, cache entries) and reads back, with get_archive, only what this
contract names: the target's artifacts, failure evidence, cache files. The
container is not trusted: a Keras model can run its own code when it loads.
"""
import copy
import json
import re

from trtkit_steps import event_shapes

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
# --precision fp16 / int8 written into the ONNX model (onnx_precision), beside the FP32 export it came from
REDUCED_ONNX = {"fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
_REDUCED = tuple(REDUCED_ONNX.values())
TARGET_ARTIFACTS = {
    "onnx": (("model.onnx",) + _REFERENCE, _REDUCED + ("bench.png",)),
    "frozen": (("model.pb",) + _REFERENCE, ("model.onnx", "bench.png")),
    # timing.cache: the tactic timings the engine was built from, to replay in a rebuild (--timing-cache)
    "engine": (("model.onnx", "model.plan", "timing.cache") + _REFERENCE,
               _REDUCED + ("calibration.cache", "bench.png")),
    "tftrt": (("model.pb", "model.onnx", "model.tftrt") + _REFERENCE, ("bench.png",)),
}
ARTIFACT_KINDS = {"model.onnx": "onnx", "model.fp16.onnx": "onnx-fp16", "model.int8.onnx": "onnx-int8",
                  "model.pb": "frozen", "model.plan": "engine",
                  "calibration.cache": "calibration-cache", "timing.cache": "timing-cache",
                  "model.tftrt": "tftrt-savedmodel", "bench.png": "chart",
                  REFERENCE_INPUTS: "reference-inputs", REFERENCE_OUTPUTS: "reference-outputs"}
FOLDER_ARTIFACTS = ("model.tftrt",)        # a SavedModel: regular files and folders only
CHART = "bench.png"
EVIDENCE_FILES = ("inputs.npz", "expected.npz", "actual.npz")
CACHE_FILE = re.compile(r"^(timing-[A-Za-z0-9._-]{1,160}|calibration-[0-9a-f]{32})\.cache$")
MAX_CACHE_FILE_BYTES = 256 << 20
MAX_EVIDENCE_FILE_BYTES = 1 << 30

# --- events: `::trtkit::{json}` lines on stdout (their shapes: event_shapes.py) -----
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
# How a Keras model becomes ONNX, in the order tried per format; the next route runs when one fails (its
# export is invalid, or ONNX Runtime refuses it or differs from Keras). keras-export: Keras 3's own
# model.export(format="onnx"), for models Keras 3 loads. tf2onnx: trtkit's frozen graph through tf2onnx.
# (the routes' names: event_shapes.EXPORT_ROUTES, which the export event may name)
ROUTE_ORDER = {"keras": ("keras-export", "tf2onnx"), "h5": ("tf2onnx", "keras-export"), "savedmodel": ("tf2onnx",)}


def model_path(model_format, file_name):
    """Where MODEL is in the container: a trtkit output's model.onnx is already one of the artifacts."""
    if model_format == OUTPUT_FORMAT:
        return WORK + "/" + ARTIFACTS + "/model.onnx"
    return MODEL_DIR + "/" + file_name
MODES = ("build", "inspect", "bench", "check")


def allowed_artifacts(target, bench):
    """Names the host accepts from a build of this target."""
    required, optional = TARGET_ARTIFACTS[target]
    return tuple(required) + tuple(name for name in optional if bench or name != CHART)


# --- build options: each declared once ------------------------------------------
# From this table the host makes the build command's options, their parsing and their place in the plan,
# plan.json, the manifest, the cache key, the warning about options a target does not use, and reproduce.sh's
# arguments (toolkit/build_options.py); the container checks plan.json's values against it. Every option
# here reaches the container and enters the cache key of the builds it shapes (a data file by its bytes).
class BuildOption(object):
    """key: its name in plan.json and the manifest. flag: its command-line flag (the project file's key is the
    flag without dashes, '-' as '_'). kind: how its value is written and checked (KIND_CHECKS). targets: the
    targets whose artifacts it shapes (None: all). bounds: (low, high) of its numbers; most: of a list's items;
    negative: a flag's --no form; role: a data file's name in DATA_DIR; folders: whether that may be a folder;
    needs: (key, why) of an option that must be set when this one is."""

    def __init__(self, key, flag, kind, default, help, targets=None, choices=None, bounds=None, most=None,
                 negative=None, role=None, folders=False, needs=None):
        self.key, self.flag, self.kind, self.default, self.help = key, flag, kind, default, help
        self.targets, self.choices, self.bounds, self.most = targets, choices, bounds, most
        self.negative, self.role, self.folders, self.needs = negative, role, folders, needs

    def shapes(self, target):
        return self.targets is None or target in self.targets


PRECISIONS = ("fp32", "fp16", "int8")   # strict FP32 unless --tf32
IO_PRECISIONS = ("fp32", "fp16")         # of an engine's float inputs and outputs (--io-precision)
RECIPES = ("auto", "rewrite", "flags")     # --precision-recipe: how an engine gets fp16 / int8
MAX_BATCH = 2 ** 31 - 1                  # TensorRT dimensions are int32
_TENSORRT = ("engine", "tftrt")
_ENGINE = ("engine",)
BUILD_OPTIONS = (
    BuildOption("precision", "--precision", "choice", "fp32",
                "fp32 is strict FP32 (TF32 off unless --tf32). fp16 and int8 are also written into the ONNX model "
                "(model.fp16.onnx: float32 inputs and outputs, layers that overflow FP16 kept FP32; model.int8.onnx: "
                "Q/DQ calibrated on --calib-data), verified against Keras, and built strongly typed on TensorRT 10+.",
                ("onnx",) + _TENSORRT, choices=PRECISIONS),
    BuildOption("precision_recipe", "--precision-recipe", "choice", "auto",
                "How an engine gets fp16 or int8: rewrite (from model.fp16.onnx / model.int8.onnx, strongly typed: "
                "TensorRT 10 and newer), flags (TensorRT's builder flags on the FP32 model: TensorRT 8 and 10, the "
                "route measured on TensorRT 8.6), auto (rewrite on TensorRT 10+; before, flags, and the rewrite where "
                "the flags' engine misses its tolerance).", _ENGINE,
                choices=RECIPES),
    BuildOption("io_precision", "--io-precision", "choice", "fp32",
                "Type of the engine's float inputs and outputs. fp16 halves the bytes copied to and from the GPU, "
                "for data that is float16 already: trtkit.runtime takes float32 too, but converts it on the host, "
                "which costs more than the copy saves (docs/runtime.md). Needs TensorRT's Python API.",
                _ENGINE, choices=IO_PRECISIONS),
    BuildOption("tf32", "--tf32", "flag", False, "Allow TF32 in fp32 engines (faster, errors near 1e-4).", _ENGINE),
    BuildOption("shapes", "--shapes", "shapes", {},
                "NAME:MIN/OPT/MAX batch sizes or full shapes (64x11x192); repeat per input."),
    BuildOption("sample_data", "--sample-data", "data", None, ".npy (one input) or .npz (by input name) to verify "
                "with.", role="sample"),
    BuildOption("calib_data", "--calib-data", "data", None, "INT8 calibration data: .npy/.npz or a folder of them.",
                ("onnx",) + _TENSORRT, role="calib", folders=True),
    BuildOption("timing_cache", "--timing-cache", "data", None,
                "A TensorRT timing cache to replay, e.g. an earlier build's timing.cache: the engine picks the same "
                "tactics wherever TensorRT allows.", _ENGINE, role="timing"),
    BuildOption("strict_timing_cache", "--strict-timing-cache", "flag", False,
                "Fail the build when a tactic is missing from --timing-cache instead of timing it anew.", _ENGINE,
                needs=("timing_cache", "the cache whose tactics to replay")),
    BuildOption("typical_batch", "--typical-batch", "whole", None,
                "The batch size your application sends most: the engine's profile is tuned for it (its OPT) where "
                "--shapes does not say.", _ENGINE, bounds=(1, MAX_BATCH)),
    BuildOption("exact_batches", "--exact-batches", "batches", [],
                "Batch sizes your application sends exactly, comma-separated (at most 8): each gets an optimization "
                "profile of its own beside the full range, which trtkit.runtime picks for it. On an H100 (TensorRT "
                "8.6) the origin LSTM took 17-25% less GPU time at batch 1 and 64 (docs/runtime.md); each adds a "
                "profile to build.", _ENGINE, bounds=(1, MAX_BATCH), most=8),
    # TensorRT's builder optimisation level (8.6 on). Measured on an H100 (TensorRT 8.6, the origin LSTM): 5 gave
    # nothing over 3 at 4-5x the build time, 0 was 2.4x slower at batch 100000. 3 is also TensorRT's own default.
    BuildOption("optimization_level", "--opt-level", "whole", 3,
                "TensorRT's builder optimisation level, 0-5 (TensorRT 8.6 and newer): 5 builds far longer for "
                "little, 0 runs slower.", _ENGINE, bounds=(0, 5)),
    BuildOption("unroll_lstm", "--unroll-lstm", "flag", False,
                "Export LSTMs of a fixed sequence length unrolled into MatMuls and pointwise ops instead of ONNX's "
                "LSTM node. On TensorRT 8.6 (H100, FP16) the origin LSTM's engine then ran 1.36x slower at batch 1 "
                "but was 8x closer to Keras (docs/runtime.md).", negative="--keep-lstm"),
    BuildOption("atol", "--atol", "number", None, "Largest absolute error allowed against Keras, every output "
                "(default: the artifact's, times each output's largest Keras value past 1).", bounds=(0.0, 1e6)),
    BuildOption("workspace", "--workspace", "size", None, "TensorRT workspace limit, e.g. 2G.", _ENGINE,
                bounds=(1 << 20, 1 << 40)),
    BuildOption("opset", "--opset", "whole", 17, "ONNX opset of the export.", bounds=(13, 18)),
    BuildOption("seed", "--seed", "whole", 0, "Seed of the random sample inputs.", bounds=(0, 2 ** 32 - 1)),
    BuildOption("disabled_tactic_sources", "--disable-tactic-sources", "names", None,
                "TensorRT tactic sources to leave out, comma-separated (e.g. CUBLAS,CUBLAS_LT,CUDNN where an image "
                "lacks those libraries), like trtexec's --tacticSources=-NAME.", _ENGINE),
)
OPTIONS_BY_KEY = dict((option.key, option) for option in BUILD_OPTIONS)
NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,40}$")     # a TensorRT enum member's name (--disable-tactic-sources)


def _whole_in(low, high, value):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _in_bounds(option, value):
    return _whole_in(option.bounds[0], option.bounds[1], value)


def _number_in_bounds(option, value):
    return event_shapes.finite(value) and option.bounds[0] <= value <= option.bounds[1]


def _batches(option, value):
    """Distinct, ascending, at most option.most of them."""
    return isinstance(value, list) and len(value) <= option.most and value == sorted(set(value)) and \
        all(_in_bounds(option, v) for v in value)


def _names(option, value):
    return isinstance(value, list) and bool(value) and all(event_shapes.text(v) and NAME.match(v) for v in value)


def _dims(value):
    """A batch size, or a whole shape."""
    return _whole_in(1, MAX_BATCH, value) or (
        isinstance(value, list) and bool(value) and all(_whole_in(1, MAX_BATCH, d) for d in value))


def shape_entry(model_shape, entry):
    """One of --shapes' MIN/OPT/MAX as a whole shape: a batch size takes the model's other dimensions (None where
    the model does not know them), a full shape is itself. The steps read --shapes only through this."""
    return [entry] + list(model_shape[1:]) if isinstance(entry, int) else list(entry)


def _shapes(option, value):
    """{input name: [MIN, OPT, MAX]}."""
    return isinstance(value, dict) and all(event_shapes.text(name) and isinstance(dims, list) and len(dims) == 3 and
                                           all(_dims(d) for d in dims) for name, dims in value.items())


def data_path(option, suffix=""):
    """Where a data file goes in the container: its role, and the suffix of the user's file."""
    return DATA_DIR + "/" + option.role + suffix


def _data(option, value):
    return event_shapes.text(value) and value.startswith(data_path(option)) and \
        re.match(r"^(\.[^/]*)?$", value[len(data_path(option)):]) is not None


# kind -> whether a plan.json value (other than None) is one that kind holds
KIND_CHECKS = {
    "choice": lambda option, value: value in option.choices,
    "flag": lambda option, value: isinstance(value, bool),
    "whole": _in_bounds,
    "number": _number_in_bounds,
    "size": _in_bounds,
    "batches": _batches,
    "names": _names,
    "shapes": _shapes,
    "data": _data,
}


def option_defaults():
    """A fresh dict of every build option's default (a list or dict default is the caller's to change)."""
    return dict((option.key, copy.deepcopy(option.default)) for option in BUILD_OPTIONS)


def bad_option_values(values):
    """The keys of declared options whose value their kind cannot hold (None only where it is the default), or
    that are set without the option they need."""
    unmet = unmet_needs(values)
    return sorted(option.key for option in BUILD_OPTIONS
                  if not (values[option.key] is None and option.default is None
                          or values[option.key] is not None and KIND_CHECKS[option.kind](option, values[option.key]))
                  or option in unmet)


def unmet_needs(values):
    """The options set without the option their declaration says they need."""
    return [option for option in BUILD_OPTIONS
            if option.needs and values[option.key] and values[option.needs[0]] in (None, [], False)]


# --- plan.json: written by the host (BuildPlan.container_plan), read by every stage --
# The keys beside the build options: what to build, from what, and how to run.
PLAN_KEYS = ("model", "model_format", "trust_model", "target", "mode", "bench", "cache_dir") + \
    tuple(option.key for option in BUILD_OPTIONS)


class PlanMismatch(ValueError):
    """plan.json was written by a host that does not share this contract."""


def read_plan(path):
    """plan.json, strictly: a missing or unknown key, or an option value its declaration does not allow, means the
    two sides disagree, and is an error."""
    with open(path) as f:
        plan = json.load(f)
    missing = sorted(set(PLAN_KEYS) - set(plan))
    unknown = sorted(set(plan) - set(PLAN_KEYS))
    bad = [] if missing else bad_option_values(plan)
    if missing or unknown or bad or plan["target"] not in TARGETS or plan["mode"] not in MODES:
        raise PlanMismatch("plan.json does not match this trtkit's contract (missing %s, unknown %s, invalid %s, "
                           "target %r, mode %r)" % (missing, unknown, bad, plan.get("target"), plan.get("mode")))
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
    reduced = ["onnx_precision"] if plan["precision"] in REDUCED_ONNX and plan["target"] in ("onnx", "engine") else []
    if plan["model_format"] == ONNX_FORMAT:
        return ["onnx_import"] + reduced + (["engine"] if plan["target"] == "engine" else [])
    later = list(TARGET_STEPS[plan["target"]][1])
    if reduced:
        later.insert(later.index("onnx_stage") + 1, reduced[0])
    if plan["bench"]:
        later = (["onnx_stage"] if "onnx_stage" not in later else []) + later + ["bench"]
    return ["keras_stage"] + later


# The steps each stage module times (events.step), in order. A step's start re-arms the host's --timeout, and
# the container can print any start it likes: the host re-arms only for these steps of the stages a plan runs.
STAGE_STEPS = {
    "keras_stage": ("inspect", "freeze", "reference", "verify-frozen", "export"),
    "onnx_import": ("inspect", "reference"),
    "onnx_stage": ("verify-onnx",),
    "onnx_precision": ("precision", "verify-precision"),
    "engine": ("engine-build", "verify-engine", "engine-rewrite", "verify-rewrite"),
    "tftrt": ("tftrt-convert", "verify-tftrt"),
    "bench": ("bench",),
    "engine_check": ("engine-check",),
}


# auto's second engine, from the rewrite, where the builder-flag engine missed its tolerance (engine.py)
REWRITE_STEPS = STAGE_STEPS["engine"][2:]


def rewrites_on_miss(plan):
    """Whether the plan's engine step may build that second engine: reduced precision, --precision-recipe auto."""
    return plan["precision"] != "fp32" and plan.get("precision_recipe") == "auto"


def steps(plan):
    """The steps a plan may start, in order (a name twice when two of its stages time it)."""
    rewrites = rewrites_on_miss(plan)
    return [name for stage in stages(plan) for name in STAGE_STEPS[stage] if rewrites or name not in REWRITE_STEPS]


# --- bench settings: defaults and bounds for both sides ----------------------------
BENCH_DEFAULTS = {"batches": [1, 64, 1024], "iterations": 50, "warmup": 5}  # type: dict  # values of two types
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
