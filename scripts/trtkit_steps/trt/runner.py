"""Running a built engine repeatedly on device buffers, timed with CUDA events: the benchmark.

Verification runs through Polygraphy (polygraphy_api); the benchmark keeps this
runner because it times execute_async alone, on buffers already on the GPU,
and the copies separately, which Polygraphy's TrtRunner does not split.
"""
import numpy as np

from trtkit_steps.errors import StepError, Unsupported
from trtkit_steps.storage import read_bytes
from trtkit_steps.trt import gpu
from trtkit_steps.trt.settings import import_tensorrt


class EngineRunner(object):
    """Runs one engine repeatedly, with device buffers sized for the inputs last loaded.

    load_inputs() copies inputs to the GPU, infer() runs on them, outputs()
    copies the results back; infer_host() does all three.
    """

    def __init__(self, engine):
        trt = import_tensorrt()
        if trt is None:
            raise Unsupported("running a TensorRT engine needs TensorRT's Python API (8.0 or newer)")
        self.device_name, self.compute_capability = gpu.device_info()
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # must outlive the engine
        self.engine = self._deserialize(engine)
        self._context = self.engine.create_execution_context()
        self._named = hasattr(self.engine, "num_io_tensors")  # TensorRT 8.5+: tensors by name, not binding
        self._io = self._tensors()
        self._buffers = {}
        self._shapes = {}
        self._start_gpu()

    @gpu.on_gpu
    def _start_gpu(self):
        cuda = gpu.binding()
        self._stream = cuda.Stream()
        self._started, self._ended = cuda.Event(timing=True), cuda.Event(timing=True)

    def _deserialize(self, engine):
        if isinstance(engine, str):
            engine = read_bytes(engine)
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

    @gpu.on_gpu
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
            self._stream.upload(self._buffers[name].ptr, array.ctypes.data, array.nbytes)

    def _allocate(self, input_shapes):
        self._free_buffers()
        self._select_profile(input_shapes)
        for index, (name, is_input, _) in enumerate(self._io):
            if is_input:
                self._set_input_shape(index, name, input_shapes[name])
        for index, (name, is_input, dtype) in enumerate(self._io):
            shape = input_shapes[name] if is_input else self._output_shape(index, name)
            self._buffers[name] = gpu.binding().DeviceMemory(int(np.prod(shape)) * dtype.itemsize)
            self._shapes[name] = shape
            if self._named:
                self._context.set_tensor_address(name, self._buffers[name].ptr)

    def _select_profile(self, input_shapes):
        """The profile trtkit.runtime would run this batch on (build --exact-batches adds profiles for one batch)."""
        engine = self.engine
        if not self._named or engine.num_optimization_profiles < 2:
            return
        from trtkit_runtime.shapes import ProfileRange, select_profile
        profiles = [{name: ProfileRange(*(tuple(dims) for dims in engine.get_tensor_profile_shape(name, profile)))
                     for name in input_shapes} for profile in range(engine.num_optimization_profiles)]
        try:
            profile = select_profile(profiles, {name: tuple(shape) for name, shape in input_shapes.items()})
        except ValueError as e:
            raise StepError(str(e)) from None
        if not self._context.set_optimization_profile_async(profile, self._stream.handle):
            raise StepError(f"TensorRT refused optimization profile {profile} (its log above says why)")
        self._stream.synchronize()

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

    @gpu.on_gpu
    def infer(self):
        """Run once on the loaded inputs and wait for it; returns the GPU milliseconds."""
        self._started.record(self._stream)
        if self._named:
            ran = self._context.execute_async_v3(self._stream.handle)
        else:
            ran = self._context.execute_async_v2([self._buffers[name].ptr for name, _, _ in self._io],
                                                 self._stream.handle)
        self._ended.record(self._stream)
        self._ended.synchronize()
        if not ran:
            raise StepError("TensorRT failed to run the engine; its log above says why")
        return self._ended.milliseconds_since(self._started)

    @gpu.on_gpu
    def outputs(self):
        """The last run's outputs, copied to the host: {name: array}."""
        result = {}
        for name, is_input, dtype in self._io:
            if not is_input:
                result[name] = np.empty(self._shapes[name], dtype=dtype)
                self._stream.download(result[name].ctypes.data, self._buffers[name].ptr, result[name].nbytes)
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

    @gpu.on_gpu
    def close(self):
        self._free_buffers()
        for event in (self._started, self._ended):
            event.destroy()
        self._stream.destroy()

