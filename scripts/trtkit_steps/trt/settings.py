"""What to build: the plan's engine options, precision checks, tolerances, cache names, tactic sources."""
import re

from trtkit_steps.common import StepError, Unsupported
from trtkit_steps.trt.profiles import with_exact_batches

# TensorRT's builder optimisation level (8.6 on). Measured on an H100 (TensorRT 8.6, the origin LSTM): 5 gave
# nothing over 3 at 4-5x the build time, 0 was 2.4x slower at batch 100000. 3 is also TensorRT's own default.
DEFAULT_OPTIMIZATION_LEVEL = 3
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 1e-2, "int8": None}  # int8: report the error, gate nothing
# --tf32 rounds FP32 matmul inputs to 10 mantissa bits: 1.1e-4 on the origin model (H200, TensorRT 8.6).
TF32_ATOL = 1e-3


class BuildSettings(object):
    """The plan's engine options, defaults filled in."""

    def __init__(self, plan, profiles):
        self.precision = plan.get("precision") or "fp32"
        self.tf32 = bool(plan.get("tf32"))
        self.workspace = plan.get("workspace")
        self.disabled_tactics = plan.get("disabled_tactic_sources")  # None: TensorRT's default sources
        self.strict_timing_cache = bool(plan.get("strict_timing_cache"))
        self.optimization_level = plan.get("optimization_level", DEFAULT_OPTIMIZATION_LEVEL)
        self.io_precision = plan.get("io_precision") or "fp32"
        self.profiles = profiles    # the full range (profile 0)
        self.exact_batches = list(plan.get("exact_batches") or [])
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


def check_precision(trt_major, precision, io_precision="fp32"):
    if precision not in DEFAULT_ATOL:
        raise StepError(f"unknown precision {precision!r}: use fp32, fp16 or int8")
    if io_precision not in ("fp32", "fp16"):
        raise StepError(f"unknown I/O precision {io_precision!r}: use fp32 or fp16")
    for option, value in (("--precision", precision), ("--io-precision", io_precision)):
        if trt_major >= 11 and value != "fp32":
            raise Unsupported(f"TensorRT {trt_major} builds strongly typed networks: the types come from the "
                              f"ONNX model, so {option} {value} cannot apply; use {option} fp32")


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
