"""Build a TensorRT engine from artifacts/model.onnx and verify it against Keras.

    python3 -m trtkit_steps.engine PLAN.json

The engine is built with TensorRT's Python API when the image has it (8.x or
10.x), else with trtexec. Either way it is then run on the sample inputs and
must match the Keras reference. An engine only runs with the TensorRT version
and the GPU model it was built with; so does the timing cache, which spares a
rebuild most of its tactic timing, so it is kept per version and GPU under
cache_dir.

EngineRunner runs a built engine repeatedly; the benchmark imports it.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess

import numpy as np

from trtkit_steps import contract, trt_cuda
from trtkit_steps.common import (StepError, Unsupported, compare, emit, gate, load_arrays, log, read_json,
                                 run_main, step, tolerance)

MAX_BATCH = 100000
OPT_BATCH = 1024
MAX_BATCH_BYTES = 2 ** 30  # the default max batch keeps one input batch within 1 GiB
CALIBRATION_BATCH = 64
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 1e-2, "int8": None}  # int8: report the error, gate nothing
# --tf32 rounds FP32 matmul inputs to 10 mantissa bits: 1.1e-4 on the origin model (H200, TensorRT 8.6).
TF32_ATOL = 1e-3
TRTEXEC_DIRS = ("/usr/src/tensorrt/bin", "/workspace/tensorrt/bin", "/opt/tensorrt/bin")


# --- optimization profiles ----------------------------------------------------

def resolve_profiles(io_inputs, shapes):
    """{input: {"min", "opt", "max"}} from --shapes, else batch 1 / min(1024, max) / max."""
    names = [spec["name"] for spec in io_inputs]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise StepError(f"--shapes names {unknown} are not inputs of the model; its inputs are {names}")
    return {spec["name"]: _input_profile(spec, shapes.get(spec["name"])) for spec in io_inputs}


def _input_profile(spec, override):
    if override:
        if len(override) != 3:
            raise StepError(f"--shapes for {spec['name']} needs MIN/OPT/MAX, got {override}")
        profile = dict(zip(("min", "opt", "max"), [_full_shape(spec, value) for value in override]))
    else:
        profile = _default_profile(spec)
    _check_profile(spec, profile)
    return profile


def _full_shape(spec, value):
    """A --shapes entry: a batch size (the other dims from the model) or a whole shape."""
    dims = [value] + list(spec["shape"][1:]) if isinstance(value, int) else list(value)
    if any(d is None or d < 0 for d in dims):
        raise StepError(f"input {spec['name']} has dimensions of unknown size {spec['shape']}: give whole shapes, "
                        f"--shapes {spec['name']}:MIN/OPT/MAX with each like {_example_shape(spec)}")
    return [int(d) for d in dims]


def _example_shape(spec):
    return "x".join("N" if d is None else str(d) for d in spec["shape"])


def _default_profile(spec):
    dims = list(spec["shape"])
    sample = dims[1:]
    if any(d is None or d < 0 for d in sample):
        raise StepError(f"input {spec['name']} has dimensions of unknown size {dims}: "
                        f"give --shapes {spec['name']}:MIN/OPT/MAX")
    if dims[0] is not None:  # a fixed batch: the model takes only that shape
        return {"min": dims, "opt": dims, "max": dims}
    sample_bytes = np.dtype(spec["dtype"]).itemsize * int(np.prod(sample))
    largest = max(1, min(MAX_BATCH, MAX_BATCH_BYTES // sample_bytes))
    return {"min": [1] + sample, "opt": [min(OPT_BATCH, largest)] + sample, "max": [largest] + sample}


def _check_profile(spec, profile):
    low, opt, high = profile["min"], profile["opt"], profile["max"]
    if not len(low) == len(opt) == len(high) == len(spec["shape"]):
        raise StepError(f"--shapes for {spec['name']} must have {len(spec['shape'])} dimensions "
                        f"like {_example_shape(spec)}, got {low} / {opt} / {high}")
    if not all(0 < a <= b <= c for a, b, c in zip(low, opt, high)):
        raise StepError(f"--shapes for {spec['name']} needs 0 < MIN <= OPT <= MAX in every dimension, "
                        f"got {low} / {opt} / {high}")


# --- what to build ------------------------------------------------------------

class BuildSettings(object):
    """The plan's engine options, defaults filled in."""

    def __init__(self, plan, profiles):
        self.precision = plan.get("precision") or "fp32"
        self.tf32 = bool(plan.get("tf32"))
        self.workspace = plan.get("workspace")
        self.disabled_tactics = plan.get("tactic_sources")  # None: TensorRT's default sources
        self.profiles = profiles


class BuildJob(object):
    """One build: its settings, files and caches (paths, or None)."""

    def __init__(self, settings, onnx, engine, timing_cache=None, calibration=None):
        self.settings = settings
        self.onnx = onnx
        self.engine = engine
        self.timing_cache = timing_cache
        self.calibration = calibration


def check_precision(trt_major, precision):
    if precision not in DEFAULT_ATOL:
        raise StepError(f"unknown precision {precision!r}: use fp32, fp16 or int8")
    if trt_major >= 11 and precision != "fp32":
        raise Unsupported(f"TensorRT {trt_major} builds strongly typed networks: the precision comes from the "
                          f"ONNX model's types, so --precision {precision} cannot apply; use --precision fp32")


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


# --- INT8 calibration -----------------------------------------------------------

class Calibration(object):
    """INT8 calibration data and its cache. A cache saved under cache_dir for the
    same model, data and TensorRT version is reused instead of calibrating again."""

    def __init__(self, arrays, shared_cache):
        self.arrays = arrays
        self.rows = len(next(iter(arrays.values())))
        self.shared_cache = shared_cache
        self.reused = shared_cache is not None and _nonempty(shared_cache)
        self.cache = _read_bytes(shared_cache) if self.reused else None  # TensorRT fills it when it calibrates

    def save(self, artifact_path):
        if not self.cache:
            raise StepError("TensorRT wrote no INT8 calibration cache: calibration did not run")
        _write_atomic(artifact_path, self.cache)
        if self.shared_cache and not self.reused:
            _write_atomic(self.shared_cache, self.cache)


def load_calibration_data(path, io_inputs):
    """{input: array} from a .npy (one input), an .npz, or a folder of them joined along the batch."""
    if not path or not os.path.exists(path):
        raise StepError(f"INT8 calibration data {path} does not exist")
    files = sorted(glob.glob(os.path.join(path, "*.np[yz]"))) if os.path.isdir(path) else [path]
    if not files:
        raise StepError(f"no .npy or .npz files in the calibration folder {path}")
    parts = [_calibration_file(f, io_inputs) for f in files]
    arrays = {spec["name"]: np.concatenate([p[spec["name"]] for p in parts]).astype(spec["dtype"])
              for spec in io_inputs}
    rows = {name: len(a) for name, a in arrays.items()}
    if len(set(rows.values())) != 1 or not min(rows.values()):
        raise StepError(f"calibration data needs the same, non-zero number of samples per input, got {rows}")
    return arrays


def _calibration_file(path, io_inputs):
    names = [spec["name"] for spec in io_inputs]
    if path.endswith(".npy"):
        if len(names) != 1:
            raise StepError(f"{path} holds one array but the model has inputs {names}: "
                            "use an .npz keyed by input name")
        return {names[0]: np.load(path)}
    arrays = load_arrays(path)
    if len(names) == 1 and len(arrays) == 1:
        return {names[0]: next(iter(arrays.values()))}
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise StepError(f"calibration file {path} lacks input(s) {missing} (it has {sorted(arrays)})")
    return arrays


def calibration_cache_name(onnx_path, trt_version, arrays):
    """Scales hold for one model, one data set and one TensorRT version: all three key the file."""
    digest = hashlib.sha256()
    with open(onnx_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(trt_version.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return f"calibration-{digest.hexdigest()[:32]}.cache"


# --- files --------------------------------------------------------------------

def _nonempty(path):
    return os.path.isfile(path) and os.path.getsize(path) > 0


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _write_atomic(path, data):
    """Write via a per-process temporary file: a killed build, or a second build
    sharing cache_dir, never leaves half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# --- TensorRT Python API --------------------------------------------------------

def import_tensorrt():
    """The tensorrt module when its Python API can build here (8.0 or newer), else None."""
    try:
        import tensorrt
    except (ImportError, OSError):  # OSError: the package is there, its libraries are not
        return None
    return tensorrt if _major(tensorrt.__version__) >= 8 else None


def _major(version):
    return int(version.split(".")[0])


class PythonApi(object):
    name = "python-api"

    def __init__(self, trt):
        self.trt = trt
        self.version = trt.__version__
        self.major = _major(self.version)

    def build(self, job):
        _write_atomic(job.engine, build_serialized_engine(self.trt, job))

    def run(self, engine_path, inputs, scratch):
        return run_engine(engine_path, inputs)


def build_serialized_engine(trt, job):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # EXPLICIT_BATCH is required before TensorRT 10 and deprecated from 10 on.
    flags = 0 if _major(trt.__version__) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = _parse_onnx(trt, network, logger, job.onnx)
    _check_network_inputs(network, job.settings.profiles)
    config = _builder_config(trt, builder, job.settings)
    calibrator = _attach_calibrator(trt, builder, config, job.calibration) if job.calibration else None
    if job.timing_cache:
        data = _read_bytes(job.timing_cache) if _nonempty(job.timing_cache) else b""
        # ignore_mismatch=False: TensorRT skips a cache from another version or GPU.
        config.set_timing_cache(config.create_timing_cache(data), False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StepError("TensorRT could not build the engine; its log above says why")
    if job.timing_cache:
        _write_atomic(job.timing_cache, bytes(config.get_timing_cache().serialize()))
    del parser, calibrator  # both must live until the build is done: the parser owns the weights
    return bytes(serialized)


def _parse_onnx(trt, network, logger, onnx_path):
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(_read_bytes(onnx_path)):
        errors = [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]
        raise StepError(f"TensorRT cannot parse {os.path.basename(onnx_path)}: {'; '.join(errors)}")
    return parser


def _check_network_inputs(network, profiles):
    names = sorted(network.get_input(i).name for i in range(network.num_inputs))
    if names != sorted(profiles):
        raise StepError(f"model.onnx has inputs {names} but io.json lists {sorted(profiles)}")


def _builder_config(trt, builder, settings):
    config = builder.create_builder_config()
    if not settings.tf32:  # TensorRT uses TF32 in FP32 layers unless told not to
        config.clear_flag(trt.BuilderFlag.TF32)
    if settings.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 falls back to FP16 where INT8 has no kernel
    if settings.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if settings.workspace:
        if hasattr(config, "set_memory_pool_limit"):  # TensorRT 8.4 and newer
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace)
        else:
            config.max_workspace_size = settings.workspace
    if settings.disabled_tactics is not None:
        config.set_tactic_sources(tactic_mask(config.get_tactic_sources(), settings.disabled_tactics,
                                              trt.TacticSource))
    config.add_optimization_profile(_optimization_profile(builder, settings.profiles))
    return config


def _optimization_profile(builder, profiles):
    profile = builder.create_optimization_profile()
    for name, shapes in profiles.items():
        profile.set_shape(name, tuple(shapes["min"]), tuple(shapes["opt"]), tuple(shapes["max"]))
    return profile


def _attach_calibrator(trt, builder, config, calibration):
    """Calibrate on fixed-size batches: TensorRT calibrates only at the calibration profile's OPT shape."""
    batch = min(CALIBRATION_BATCH, calibration.rows)
    shapes = {}
    for name, array in calibration.arrays.items():
        shape = [batch] + list(array.shape[1:])
        shapes[name] = {"min": shape, "opt": shape, "max": shape}
    config.set_calibration_profile(_optimization_profile(builder, shapes))
    calibrator = _entropy_calibrator(trt, calibration, batch)
    config.int8_calibrator = calibrator
    return calibrator


def _entropy_calibrator(trt, calibration, batch):
    """An IInt8EntropyCalibrator2 that feeds calibration.arrays batch rows at a time."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind11 subclasses crash without it
            self.stream = trt_cuda.Stream()
            self.buffers = {}
            self.next_row = 0

        def get_batch_size(self):
            return batch

        def get_batch(self, names):
            start = self.next_row
            if start + batch > calibration.rows:
                return None
            for name in names:
                rows = np.ascontiguousarray(calibration.arrays[name][start:start + batch])
                if name not in self.buffers:
                    self.buffers[name] = trt_cuda.DeviceBuffer(rows.nbytes)
                self.stream.upload(self.buffers[name], rows)
            self.stream.synchronize()  # TensorRT reads the buffers on its own stream
            self.next_row += batch
            return [self.buffers[name].ptr for name in names]

        def read_calibration_cache(self):
            return calibration.cache

        def write_calibration_cache(self, cache):
            calibration.cache = bytes(cache)

    return EntropyCalibrator()


# --- running an engine ------------------------------------------------------------

class EngineRunner(object):
    """Runs one engine repeatedly, with device buffers sized for the inputs last loaded.

    load_inputs() copies inputs to the GPU, infer() runs on them, outputs()
    copies the results back; infer_host() does all three.
    """

    def __init__(self, engine):
        trt = import_tensorrt()
        if trt is None:
            raise Unsupported("running a TensorRT engine needs TensorRT's Python API (8.0 or newer)")
        self.device_name, self.compute_capability = trt_cuda.device_info()
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # must outlive the engine
        self.engine = self._deserialize(engine)
        self._context = self.engine.create_execution_context()
        self._named = hasattr(self.engine, "num_io_tensors")  # TensorRT 8.5+: tensors by name, not binding
        self._io = self._tensors()
        self._stream = trt_cuda.Stream()
        self._timer = trt_cuda.EventTimer()
        self._buffers = {}
        self._shapes = {}

    def _deserialize(self, engine):
        if isinstance(engine, str):
            engine = _read_bytes(engine)
        if not isinstance(engine, (bytes, bytearray)):
            return engine  # already an ICudaEngine
        deserialized = self._runtime.deserialize_cuda_engine(bytes(engine))
        if deserialized is None:
            raise StepError("TensorRT cannot load the engine: engines load only with the TensorRT version "
                            "and GPU model that built them (its log above says more)")
        return deserialized

    def _tensors(self):
        """[(name, is_input, numpy dtype)] in binding order."""
        engine, trt = self.engine, self._trt
        if self._named:
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            return [(n, engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT,
                     np.dtype(trt.nptype(engine.get_tensor_dtype(n)))) for n in names]
        return [(engine.get_binding_name(i), engine.binding_is_input(i),
                 np.dtype(trt.nptype(engine.get_binding_dtype(i)))) for i in range(engine.num_bindings)]

    def load_inputs(self, arrays):
        """Copy the inputs to the GPU, resizing every buffer when their shapes changed."""
        host = {}
        for name, is_input, dtype in self._io:
            if is_input:
                if name not in arrays:
                    raise StepError(f"no data for engine input {name}; got {sorted(arrays)}")
                host[name] = np.ascontiguousarray(arrays[name], dtype=dtype)
        if any(self._shapes.get(name) != array.shape for name, array in host.items()):
            self._allocate({name: array.shape for name, array in host.items()})
        for name, array in host.items():
            self._stream.upload(self._buffers[name], array)

    def _allocate(self, input_shapes):
        self._free_buffers()
        for index, (name, is_input, _) in enumerate(self._io):
            if is_input:
                self._set_input_shape(index, name, input_shapes[name])
        for index, (name, is_input, dtype) in enumerate(self._io):
            shape = input_shapes[name] if is_input else self._output_shape(index, name)
            self._buffers[name] = trt_cuda.DeviceBuffer(int(np.prod(shape)) * dtype.itemsize)
            self._shapes[name] = shape
            if self._named:
                self._context.set_tensor_address(name, self._buffers[name].ptr)

    def _set_input_shape(self, index, name, shape):
        if self._named:
            accepted = self._context.set_input_shape(name, shape)
        else:
            accepted = self._context.set_binding_shape(index, shape)
        if not accepted:
            raise StepError(f"input {name} of shape {list(shape)} is outside the engine's optimization profile")

    def _output_shape(self, index, name):
        dims = self._context.get_tensor_shape(name) if self._named else self._context.get_binding_shape(index)
        shape = tuple(dims)
        if any(d < 0 for d in shape):
            raise StepError(f"output {name} has a data-dependent shape {list(shape)}, which trtkit cannot size")
        return shape

    def infer(self):
        """Run once on the loaded inputs and wait for it; returns the GPU milliseconds."""
        self._timer.start(self._stream)
        if self._named:
            ran = self._context.execute_async_v3(self._stream.handle)
        else:
            ran = self._context.execute_async_v2([self._buffers[name].ptr for name, _, _ in self._io],
                                                 self._stream.handle)
        elapsed = self._timer.stop(self._stream)
        if not ran:
            raise StepError("TensorRT failed to run the engine; its log above says why")
        return elapsed

    def outputs(self):
        """The last run's outputs, copied to the host: {name: array}."""
        result = {}
        for name, is_input, dtype in self._io:
            if not is_input:
                result[name] = np.empty(self._shapes[name], dtype=dtype)
                self._stream.download(result[name], self._buffers[name])
        self._stream.synchronize()
        return result

    def infer_host(self, arrays):
        """End to end: host inputs in, host outputs out."""
        self.load_inputs(arrays)
        self.infer()
        return self.outputs()

    def _free_buffers(self):
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers, self._shapes = {}, {}

    def close(self):
        self._free_buffers()
        self._timer.destroy()
        self._stream.destroy()


def run_engine(engine, inputs):
    """Run an engine (a path, serialized bytes or an ICudaEngine) once: {output name: array}."""
    runner = EngineRunner(engine)
    try:
        return runner.infer_host(inputs)
    finally:
        runner.close()


# --- trtexec ----------------------------------------------------------------------

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


def trtexec_version(exe):
    proc = subprocess.Popen([exe, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    version = parse_trtexec_version(proc.communicate()[0])
    if version is None:
        raise StepError(f"cannot tell which TensorRT {exe} is: its --help shows no '[TensorRT vNNNN]' banner")
    return version


def _dims(shape):
    return "x".join(str(d) for d in shape)


def _shapes_arg(shapes):
    return ",".join(f"{name}:{_dims(shape)}" for name, shape in sorted(shapes.items()))


def trtexec_precision_flags(major, precision, tf32, calibration_cache):
    check_precision(major, precision)
    if major >= 11:  # strongly typed: no precision flags at all
        return []
    flags = [] if tf32 else ["--noTF32"]
    if precision in ("fp16", "int8"):
        flags.append("--fp16")
    if precision == "int8":
        flags += ["--int8", "--calib=" + calibration_cache]
    return flags


def trtexec_build_args(exe, version, job, engine, timing_cache=None, calibration_cache=None):
    """trtexec's command line for job, saving to engine and updating the timing_cache file."""
    settings = job.settings
    args = [exe, "--onnx=" + job.onnx, "--saveEngine=" + engine]
    for which in ("min", "opt", "max"):
        args.append(f"--{which}Shapes=" + _shapes_arg({n: p[which] for n, p in settings.profiles.items()}))
    args += trtexec_precision_flags(version[0], settings.precision, settings.tf32, calibration_cache)
    if settings.workspace:
        mib = max(1, settings.workspace >> 20)
        # A bare number is MiB for every trtexec that has --memPoolSize (8.4 on).
        args.append(f"--memPoolSize=workspace:{mib}" if version >= (8, 4) else f"--workspace={mib}")
    if timing_cache:
        args.append("--timingCacheFile=" + timing_cache)
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
    nan and inf bare, and values with 6 significant digits."""
    text = re.sub(r"(?<=[\s,\[])(-?)(nan|inf)(?=[\s,\]])",
                  lambda m: m.group(1) + ("NaN" if m.group(2) == "nan" else "Infinity"), text)
    outputs = {}
    for entry in json.loads(text):
        dims = [int(d) for d in entry["dimensions"].split("x") if d]
        outputs[entry["name"]] = np.asarray(entry["values"], dtype=np.float64).reshape(dims)
    return outputs


def _run_trtexec(args):
    """Run trtexec, echoing its log; StepError with its last error line when it fails."""
    log("$ " + " ".join(args))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    errors, last = [], "no output"
    for line in proc.stdout:
        line = line.rstrip()
        log(line)
        last = line or last
        if "[E]" in line:
            errors.append(line)
    if proc.wait() != 0:
        raise StepError(f"trtexec failed with exit code {proc.returncode}: {(errors or [last])[-1]}")


class Trtexec(object):
    name = "trtexec"

    def __init__(self, exe, version):
        self.exe = exe
        self.version_info = version
        self.version = ".".join(str(part) for part in version)
        self.major = version[0]

    def build(self, job):
        calibration_cache = None
        if job.calibration:
            if not job.calibration.reused:
                raise Unsupported("INT8 calibration from data needs TensorRT's Python API, which this image lacks; "
                                  "trtexec only reads a calibration cache, and cache_dir has none for this model, "
                                  "data and TensorRT version")
            calibration_cache = job.calibration.shared_cache
        engine_tmp = job.engine + ".tmp"
        cache_tmp = f"{job.timing_cache}.tmp{os.getpid()}" if job.timing_cache else None
        if cache_tmp and _nonempty(job.timing_cache):
            shutil.copyfile(job.timing_cache, cache_tmp)  # trtexec rewrites the file in place
        try:
            _run_trtexec(trtexec_build_args(self.exe, self.version_info, job, engine_tmp, cache_tmp,
                                            calibration_cache))
            os.replace(engine_tmp, job.engine)
            if cache_tmp:
                os.replace(cache_tmp, job.timing_cache)
        finally:
            for leftover in (engine_tmp, cache_tmp):
                if leftover and os.path.exists(leftover):
                    os.remove(leftover)

    def run(self, engine_path, inputs, scratch):
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


def select_backend():
    """TensorRT's Python API when the image has it, else trtexec."""
    trt = import_tensorrt()
    if trt is not None:
        return PythonApi(trt)
    exe = find_trtexec()
    if exe is None:
        raise Unsupported("no TensorRT in this image: neither the tensorrt Python package (8.0 or newer) nor "
                          f"trtexec (looked on PATH and in {', '.join(TRTEXEC_DIRS)})")
    return Trtexec(exe, trtexec_version(exe))


# --- the step ------------------------------------------------------------------

def _build_job(plan, work, io, settings, trt_version, gpu_name, capability):
    artifacts = os.path.join(work, contract.ARTIFACTS)
    onnx = os.path.join(artifacts, "model.onnx")
    cache_dir = plan.get("cache_dir")
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
    timing_cache = os.path.join(cache_dir, timing_cache_name(trt_version, gpu_name, capability)) if cache_dir else None
    calibration = None
    if settings.precision == "int8":
        if not plan.get("calib_data"):
            raise StepError("--precision int8 needs --calib-data: samples like the real inputs, "
                            "from which TensorRT sets the INT8 scales")
        arrays = load_calibration_data(plan["calib_data"], io["inputs"])
        shared = os.path.join(cache_dir, calibration_cache_name(onnx, trt_version, arrays)) if cache_dir else None
        calibration = Calibration(arrays, shared)
    return BuildJob(settings, onnx, os.path.join(artifacts, "model.plan"), timing_cache, calibration)


def default_atol(precision, tf32):
    if precision == "fp32" and tf32:
        return TF32_ATOL
    return DEFAULT_ATOL[precision]


def _verify(backend, work, engine_path, plan, settings):
    inputs = load_arrays(os.path.join(work, "inputs.npz"))
    expected = load_arrays(os.path.join(work, "reference.npz"))
    actual = backend.run(engine_path, inputs, os.path.join(work, "trtexec-verify"))
    atol = tolerance(plan, default_atol(settings.precision, settings.tf32))
    gate("model.plan", compare(expected, actual), atol, os.path.join(work, contract.EVIDENCE), inputs, expected, actual)


def main(argv):
    plan = read_json(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    io = read_json(os.path.join(work, contract.IO))
    settings = BuildSettings(plan, resolve_profiles(io["inputs"], plan.get("shapes") or {}))
    gpu_name, capability = trt_cuda.device_info()
    backend = select_backend()
    emit("versions", tensorrt=backend.version)
    check_precision(backend.major, settings.precision)

    with step("engine-build") as build_step:
        job = _build_job(plan, work, io, settings, backend.version, gpu_name, capability)
        timing_cache_hit = job.timing_cache is not None and _nonempty(job.timing_cache)
        backend.build(job)
        if job.calibration:
            job.calibration.save(os.path.join(work, contract.ARTIFACTS, "calibration.cache"))
    major, minor = capability
    emit("engine", tensorrt=backend.version, gpu=gpu_name, compute_capability=f"{major}.{minor}",
         precision=settings.precision, tf32=settings.tf32, profiles=settings.profiles,
         build_seconds=round(build_step.seconds, 3), engine_bytes=os.path.getsize(job.engine),
         builder=backend.name, timing_cache_hit=timing_cache_hit, timing_cache=job.timing_cache,
         calibration_cache_reused=job.calibration.reused if job.calibration else None, portable=False,
         portability_note=f"engines run only with TensorRT {backend.version} on {gpu_name} (sm {major}{minor})")
    emit("artifact", name="model.plan", kind="engine")
    if job.calibration:
        emit("artifact", name="calibration.cache", kind="calibration-cache")

    with step("verify-engine"):
        _verify(backend, work, job.engine, plan, settings)


if __name__ == "__main__":
    run_main(main)
