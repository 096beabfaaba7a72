"""Building and running engines with trtexec, for stacks without the Python API. Flags follow the
TensorRT version: TensorRT 11's trtexec takes no precision flags (networks are strongly typed)."""
import json
import os
import re
import shutil
import subprocess

import numpy as np

from trtkit_steps.comparison import compare
from trtkit_steps.errors import StepError, Unsupported
from trtkit_steps.events import log, run_relayed
from trtkit_steps.trt.settings import STRONGLY_TYPED_FROM, check_optimization_level

TRTEXEC_DIRS = ("/usr/src/tensorrt/bin", "/workspace/tensorrt/bin", "/opt/tensorrt/bin")


def find_trtexec():
    found = shutil.which("trtexec")
    if found:
        return found
    for folder in TRTEXEC_DIRS:
        path = os.path.join(folder, "trtexec")
        if os.access(path, os.X_OK):
            return path
    return None


def parse_trtexec_version(text):
    """(major, minor, patch) from trtexec's banner: '[TensorRT v8601]' (8.6.1),
    '[TensorRT v101600]' (10.16.0) or '[TensorRT v11.1.0.106]'; None without one."""
    match = re.search(r"TensorRT v(\d+(?:\.\d+)*)", text)
    if not match:
        return None
    code = match.group(1)
    if "." in code:
        return tuple(int(part) for part in (code.split(".") + ["0", "0"])[:3])
    if len(code) >= 6:  # TensorRT 10 on: major * 10000 + minor * 100 + patch
        return int(code[:-4]), int(code[-4:-2]), int(code[-2:])
    return int(code[:-3]), int(code[-3]), int(code[-2:])  # before: major * 1000 + minor * 100 + patch


def trtexec_help(exe):
    proc = subprocess.Popen([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    return proc.communicate()[0]


def trtexec_version(exe, help_text=None):
    version = parse_trtexec_version(trtexec_help(exe) if help_text is None else help_text)
    if version is None:
        raise StepError(f"cannot tell which TensorRT {exe} is: its --help shows no '[TensorRT vNNNN]' banner")
    return version


def _dims(shape):
    return "x".join(str(d) for d in shape)


def _shapes_arg(shapes):
    return ",".join(f"{name}:{_dims(shape)}" for name, shape in sorted(shapes.items()))


def trtexec_precision_flags(major, settings, calibration_cache):
    """TF32 and the precision. A strongly typed build (the rewrite recipe) says so on TensorRT 10 (--stronglyTyped);
    TensorRT 11's trtexec builds nothing else and takes no precision flags at all."""
    if major >= 11:
        return []
    if settings.recipe == "rewrite" and major < STRONGLY_TYPED_FROM:
        raise Unsupported(f"--precision-recipe rewrite on TensorRT {major}: trtkit asks each layer to keep the ONNX "
                          "model's type through TensorRT's Python API, which this image lacks; use flags (or auto)")
    flags = [] if settings.tf32 else ["--noTF32"]
    if settings.recipe == "rewrite":
        flags.append("--stronglyTyped")
    elif settings.recipe == "flags":
        flags += ["--fp16"] + (["--int8", "--calib=" + calibration_cache] if settings.precision == "int8" else [])
    return flags


def trtexec_build_args(exe, version, job, engine, timing_cache=None, calibration_cache=None):
    """trtexec's command line for job, saving to engine and updating the timing_cache file."""
    settings = job.settings
    args = [exe, "--onnx=" + job.onnx, "--saveEngine=" + engine]
    for which in ("min", "opt", "max"):
        args.append(f"--{which}Shapes=" + _shapes_arg({n: p[which] for n, p in settings.profiles.items()}))
    args += trtexec_precision_flags(version[0], settings, calibration_cache)
    if settings.workspace:
        mib = max(1, settings.workspace >> 20)
        # A bare number is MiB for every trtexec that has --memPoolSize (8.4 on).
        args.append(f"--memPoolSize=workspace:{mib}" if version >= (8, 4) else f"--workspace={mib}")
    if timing_cache:
        args.append("--timingCacheFile=" + timing_cache)
    if settings.strict_timing_cache:
        args.append("--errorOnTimingCacheMiss")
    check_optimization_level(version >= (8, 6), settings.optimization_level, ".".join(map(str, version)))
    if version >= (8, 6):
        args.append(f"--builderOptimizationLevel={settings.optimization_level}")
    if settings.disabled_tactics:
        args.append("--tacticSources=" + ",".join("-" + name.upper() for name in settings.disabled_tactics))
    args.append("--skipInference" if version >= (8, 6) else "--buildOnly")  # --buildOnly is gone in 10
    return args


def trtexec_run_args(exe, engine, shapes, input_files, output_json):
    """One inference on raw input files; outputs go to a JSON file."""
    return [exe, "--loadEngine=" + engine, "--shapes=" + _shapes_arg(shapes),
            "--loadInputs=" + ",".join(f"{name}:{path}" for name, path in sorted(input_files.items())),
            "--exportOutput=" + output_json, "--iterations=1", "--warmUp=0", "--duration=0"]


def parse_exported_outputs(text):
    """trtexec --exportOutput JSON -> {name: float64 array}. C++ streams print
    nan and inf bare (a NaN with its sign bit set as -nan, which JSON has no word for),
    and values with 6 significant digits."""
    text = re.sub(r"(?<=[\s,\[])(-?)(nan|inf)(?=[\s,\]])",
                  lambda m: "NaN" if m.group(2) == "nan" else m.group(1) + "Infinity", text)
    outputs = {}
    for entry in json.loads(text):
        dims = [int(d) for d in entry["dimensions"].split("x") if d]
        outputs[entry["name"]] = np.asarray(entry["values"], dtype=np.float64).reshape(dims)
    return outputs


def _run_trtexec(args):
    """Run trtexec, echoing its log; StepError with its last error line when it fails."""
    log("$ " + " ".join(args))
    errors, lines = [], ["no output"]

    def remember(line):
        line = line.rstrip()
        lines[0] = line or lines[0]
        if "[E]" in line:
            errors.append(line)

    code = run_relayed(args, remember)
    if code != 0:
        raise StepError(f"trtexec failed with exit code {code}: {(errors or lines)[-1]}")


class Trtexec(object):
    name = "trtexec"
    has_loops = None    # trtexec does not say what its parser made of the model

    def __init__(self, exe):
        help_text = trtexec_help(exe)
        self.exe = exe
        self.version_info = trtexec_version(exe, help_text)
        self.version = ".".join(str(part) for part in self.version_info)
        self.major = self.version_info[0]
        self.refuses_timing_cache_misses = "--errorOnTimingCacheMiss" in help_text

    def layer_precisions(self, engine_path):
        return None     # trtexec builds without layer details unless asked (--profilingVerbosity=detailed)

    def build(self, job):
        if job.settings.strict_timing_cache and not self.refuses_timing_cache_misses:
            raise Unsupported(f"--strict-timing-cache needs a trtexec that can refuse timing-cache misses "
                              f"(--errorOnTimingCacheMiss); this one, TensorRT {self.version}, cannot")
        unbuildable = job.settings.needing_python_api()
        if unbuildable:
            raise Unsupported(f"{'; '.join(unbuildable)}. That needs TensorRT's Python API (8.0 or newer), which "
                              "this image lacks")
        calibration_cache = None
        if job.calibration:
            if not job.calibration.reused:
                raise Unsupported("INT8 calibration from data needs TensorRT's Python API, which this image lacks; "
                                  "trtexec only reads a calibration cache, and cache_dir has none for this model, "
                                  "data and TensorRT version")
            calibration_cache = job.calibration.cache_path
        engine_tmp = job.engine + ".tmp"
        cache_tmp = f"{job.save_timing_cache}.tmp{os.getpid()}"
        if job.load_timing_cache:
            shutil.copyfile(job.load_timing_cache, cache_tmp)  # trtexec reads and rewrites one file
        try:
            _run_trtexec(trtexec_build_args(self.exe, self.version_info, job, engine_tmp, cache_tmp,
                                            calibration_cache))
            os.replace(engine_tmp, job.engine)
            os.replace(cache_tmp, job.save_timing_cache)
        finally:
            for leftover in (engine_tmp, cache_tmp):
                if os.path.exists(leftover):
                    os.remove(leftover)

    def compare(self, expected, actual, atol):
        """({output: errors}, None): gate() decides, each output by its own tolerance."""
        return compare(expected, actual), None

    def run(self, engine_path, batches, scratch, profile=0):
        """[{output name: array}]: one trtexec run per batch of host inputs (its engines have one profile)."""
        assert profile == 0, "trtexec builds one optimization profile"
        return [self._run_once(engine_path, inputs, scratch) for inputs in batches]

    def _run_once(self, engine_path, inputs, scratch):
        os.makedirs(scratch, exist_ok=True)
        files = {}
        for index, name in enumerate(sorted(inputs)):
            files[name] = os.path.join(scratch, f"input{index}.bin")
            np.ascontiguousarray(inputs[name]).tofile(files[name])
        output_json = os.path.join(scratch, "outputs.json")
        shapes = {name: array.shape for name, array in inputs.items()}
        _run_trtexec(trtexec_run_args(self.exe, engine_path, shapes, files, output_json))
        with open(output_json) as f:
            return parse_exported_outputs(f.read())
