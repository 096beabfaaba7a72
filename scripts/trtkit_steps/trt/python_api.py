"""Building an engine with TensorRT's Python API (8.x and 10.x)."""
import os

import numpy as np

from trtkit_steps import trt_cuda
from trtkit_steps.common import StepError, nonempty, read_bytes, write_atomic
from trtkit_steps.trt.calibration import CALIBRATION_BATCH
from trtkit_steps.trt.runner import run_engine
from trtkit_steps.trt.settings import major_of, tactic_mask


class PythonApi(object):
    name = "python-api"

    def __init__(self, trt):
        self.trt = trt
        self.version = trt.__version__
        self.major = major_of(self.version)

    def build(self, job):
        write_atomic(job.engine, build_serialized_engine(self.trt, job))

    def run(self, engine_path, inputs, scratch):
        return run_engine(engine_path, inputs)


def build_serialized_engine(trt, job):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # EXPLICIT_BATCH is required before TensorRT 10 and deprecated from 10 on.
    flags = 0 if major_of(trt.__version__) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = _parse_onnx(trt, network, logger, job.onnx)
    _check_network_inputs(network, job.settings.profiles)
    config = _builder_config(trt, builder, job.settings)
    calibrator = _attach_calibrator(trt, builder, config, job.calibration) if job.calibration else None
    if job.timing_cache:
        data = read_bytes(job.timing_cache) if nonempty(job.timing_cache) else b""
        # ignore_mismatch=False: TensorRT skips a cache from another version or GPU.
        config.set_timing_cache(config.create_timing_cache(data), False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StepError("TensorRT could not build the engine; its log above says why")
    if job.timing_cache:
        write_atomic(job.timing_cache, bytes(config.get_timing_cache().serialize()))
    del parser, calibrator  # both must live until the build is done: the parser owns the weights
    return bytes(serialized)


def _parse_onnx(trt, network, logger, onnx_path):
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(read_bytes(onnx_path)):
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
