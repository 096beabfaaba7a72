"""What to build: the plan's engine options, precision checks, tolerances, cache names, tactic sources."""
import re

from trtkit_steps import contract
from trtkit_steps.errors import StepError, Unsupported
from trtkit_steps.trt.profiles import with_exact_batches

DEFAULT_OPTIMIZATION_LEVEL = contract.OPTIONS_BY_KEY["optimization_level"].default
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 1e-2, "int8": None}  # int8: report the error, gate nothing
# --tf32 rounds FP32 matmul inputs to 10 mantissa bits: 1.1e-4 on the origin model (H200, TensorRT 8.6).
TF32_ATOL = 1e-3


class BuildSettings(object):
    """The plan's engine options (read_plan checked them against the contract)."""

    def __init__(self, plan, profiles):
        self.precision = plan["precision"]
        self.tf32 = plan["tf32"]
        self.workspace = plan["workspace"]
        self.disabled_tactics = plan["disabled_tactic_sources"]  # None: TensorRT's default sources
        self.strict_timing_cache = plan["strict_timing_cache"]
        self.optimization_level = plan["optimization_level"]
        self.io_precision = plan["io_precision"]
        self.recipe = "fp32"        # or "flags" / "rewrite": choose_recipe, once the TensorRT version is known
        self.profiles = profiles    # the full range (profile 0)
        self.exact_batches = plan["exact_batches"]
        self.all_profiles = with_exact_batches(profiles, self.exact_batches)

    def needing_python_api(self):
        """The options asked for that only TensorRT's Python API builds (trtexec cannot, or trtkit does not run its
        verification that way), each with why."""
        asked = ((self.exact_batches, "--exact-batches: trtexec builds one optimization profile"),
                 (self.io_precision != "fp32", f"--io-precision {self.io_precision}: trtkit verifies trtexec's "
                                               "engines on float32 inputs"))
        return [why for wanted, why in asked if wanted]


class BuildJob(object):
    """One build: its settings, files and caches.

    The timing cache is read from load_timing_cache (None: start empty) and written,
    with what the build timed added, to save_timing_cache.
    """

    def __init__(self, settings, onnx, engine, load_timing_cache, save_timing_cache, calibration=None):
        self.settings = settings
        self.onnx = onnx
        self.engine = engine
        self.load_timing_cache = load_timing_cache
        self.save_timing_cache = save_timing_cache
        self.calibration = calibration


# TensorRT 10 builds strongly typed networks (its types from the ONNX model); 11 builds nothing else.
STRONGLY_TYPED_FROM = 10
WEAKLY_TYPED_UNTIL = 10


def choose_recipe(trt_version, precision, asked):
    """(recipe, reason) of how the engine gets --precision: "rewrite" builds strongly typed from the reduced-precision
    ONNX model (contract.REDUCED_ONNX), "flags" sets TensorRT's FP16/INT8 builder flags on the FP32 model."""
    major = major_of(trt_version)
    if precision == "fp32":
        return "fp32", "strict FP32: nothing to rewrite"
    if asked == "flags" and major > WEAKLY_TYPED_UNTIL:
        raise Unsupported(f"--precision-recipe flags: TensorRT {trt_version} builds strongly typed networks only "
                          "(no FP16/INT8 builder flags); use --precision-recipe rewrite (or auto)")
    if asked == "flags":
        return "flags", "asked for with --precision-recipe flags"
    if asked == "rewrite" and major < STRONGLY_TYPED_FROM:
        return "rewrite", (f"asked for with --precision-recipe rewrite; TensorRT {trt_version} has no strongly typed "
                           "networks, so each layer is asked to keep the rewritten ONNX model's type "
                           "(PREFER_PRECISION_CONSTRAINTS, with the FP16/INT8 flags that allow those types)")
    if asked == "rewrite":
        return "rewrite", "asked for with --precision-recipe rewrite"
    if major >= STRONGLY_TYPED_FROM:
        return "rewrite", (f"TensorRT {trt_version} builds strongly typed networks: the precision comes from "
                           f"the rewritten ONNX model, verified against Keras")
    return "flags", (f"TensorRT {trt_version} has no strongly typed networks: its FP16/INT8 builder flags on the "
                     "FP32 model, the route measured on TensorRT 8.6 (the rewrite instead where that engine misses)")


def strongly_typed(trt_major, recipe):
    """Whether the engine is built as a strongly typed network (the rewrite, on TensorRT 10 and newer)."""
    return recipe == "rewrite" and trt_major >= STRONGLY_TYPED_FROM


def check_precision(trt_major, recipe, io_precision="fp32"):
    """--io-precision fp16 retypes the network's inputs and outputs, which a strongly typed network keeps as the
    ONNX model has them."""
    if io_precision != "fp32" and (trt_major > WEAKLY_TYPED_UNTIL or recipe == "rewrite"):
        raise Unsupported(f"a network typed by its ONNX model (TensorRT {trt_major}, or --precision-recipe rewrite) "
                          f"keeps the model's input and output types, so --io-precision {io_precision} cannot apply; "
                          "use --io-precision fp32")


def timing_cache_name(trt_version, gpu_name, capability):
    """Timing caches only hold for one TensorRT version and GPU model, so both name the file."""
    gpu = re.sub(r"[^A-Za-z0-9.]+", "_", gpu_name).strip("_")
    return f"timing-{trt_version}-{gpu}-sm{capability[0]}{capability[1]}.cache"


def tactic_mask(enabled_mask, disabled_names, tactic_source):
    """enabled_mask without the named tactic sources (e.g. CUBLAS, CUDNN)."""
    mask = enabled_mask
    for name in disabled_names:
        source = tactic_source.__members__.get(name.upper())
        if source is None:
            raise StepError(f"unknown tactic source {name!r}; this TensorRT knows {sorted(tactic_source.__members__)}")
        mask &= ~(1 << int(source))
    return mask


def check_optimization_level(has_levels, level, version):
    """Only TensorRT 8.6 and newer take a level; older ones build as at 3, so only 3 can be asked of them."""
    if not has_levels and level != DEFAULT_OPTIMIZATION_LEVEL:
        raise Unsupported(f"--opt-level {level} needs TensorRT 8.6 or newer (builder optimisation levels); "
                          f"this image has TensorRT {version}")


def default_atol(precision, tf32):
    if precision == "fp32" and tf32:
        return TF32_ATOL
    return DEFAULT_ATOL[precision]


def import_tensorrt():
    """The tensorrt module when its Python API can build here (8.0 or newer), else None."""
    try:
        import tensorrt
    except (ImportError, OSError):  # OSError: the package is there, its libraries are not
        return None
    return tensorrt if major_of(tensorrt.__version__) >= 8 else None


def major_of(version):
    return int(version.split(".")[0])
