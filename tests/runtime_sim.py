"""trtkit.runtime without a GPU: a simulated driver and TensorRT for the test_runtime_* files.

The simulation (FakeCuda, FakeTensorRT below) runs every copy and every "kernel" at once, on the host, and
records instead of running while a stream captures; it checks what the runtime asks of CUDA and TensorRT
(sizes, offsets, casts, shapes, graph reuse), not timing or concurrency on a real device.
"""
import ctypes
import gc
import hashlib
import itertools
import json
import sys
import weakref
from contextlib import nullcontext

import numpy as np
import pytest

from trtkit import runtime
from trtkit.runtime import Engine, Host, ProfileRange
from trtkit.runtime import cuda as runtime_cuda
from trtkit.runtime import engine as engine_module

# The package's modules that reach the driver (Engine imported them all): the simulation replaces it in each.
CUDA_USERS = [m for name, m in sorted(sys.modules.items())
              if name.startswith("trtkit.runtime.") and getattr(m, "cuda", None) is runtime_cuda]
H100 = ("NVIDIA H100 80GB HBM3", "9.0")
F32, F16 = np.dtype(np.float32), np.dtype(np.float16)


def make_output(folder, plan=b"not really an engine", tensorrt="8.6.1", gpu=H100, sha256=None, target="engine"):
    """A trtkit output folder as `trtkit build --target engine` leaves it (the manifest's parts the runtime reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.plan").write_bytes(plan)
    artifacts = [{"name": "model.onnx", "kind": "onnx", "sha256": "0" * 64}]
    if target == "engine":
        artifacts.append({"name": "model.plan", "kind": "engine",
                          "sha256": sha256 or hashlib.sha256(plan).hexdigest()})
    manifest = {
        "target": {"chosen": target},
        "model": {"path": "/models/origin_lstm.h5"},
        "image": {"reference": "nvcr.io/nvidia/tensorrt:23.10-py3"},
        "earlier_build": None,
        "artifacts": artifacts,
        "engine": {"tensorrt": tensorrt, "gpu": gpu[0], "compute_capability": gpu[1],
                   "profiles": {"lstm_1_input": {"min": [1, 11, 192], "opt": [1024, 11, 192],
                                                 "max": [100000, 11, 192]}}} if target == "engine" else None,
        "names": {"inputs": [{"name": "lstm_1_input", "keras_tensor": "lstm_1_input:0"}],
                  "outputs": [{"name": "dense_3", "keras_tensor": "dense_3/Sigmoid:0"}]},
    }
    (folder / "trtkit.json").write_text(json.dumps(manifest))
    return folder


def probe(tensorrt, gpu=H100):
    return lambda device: Host(tensorrt, *gpu)


class FakeCuda:
    """runtime_cuda's interface, on the host: device memory is numpy bytes, pinned memory real host memory,
    every stream runs its work at once, and a capturing stream records it for GraphExec to replay."""
    CudaError = runtime_cuda.CudaError

    def __init__(self):
        fake = self
        self.device: dict[int, np.ndarray] = {}
        self.streams: dict[int, object] = {}
        self.graphs: dict[int, list] = {}
        self.destroyed_graphs = 0
        self.launches = 0
        self.page_locked: list[tuple[int, int]] = []   # (start, stop) of the pinned buffers handed out
        self.upload_sources: list[int] = []
        ids = itertools.count(1)

        class DeviceMemory:
            def __init__(self, nbytes):
                self.nbytes, self.ptr = nbytes, next(ids) << 32
                fake.device[self.ptr] = np.zeros(max(nbytes, 1), np.uint8)

            def free(self):
                fake.device.pop(self.ptr, None)
                self.ptr = 0

        class PinnedMemory:
            def __init__(self, nbytes):
                self.nbytes, self.buffer = nbytes, (ctypes.c_byte * max(nbytes, 1))()
                self.ptr = ctypes.addressof(self.buffer)

            def free(self):
                self.ptr = 0

        class Stream:
            def __init__(self):
                self.handle, self.recording = next(ids), None
                fake.streams[self.handle] = self

            def run(self, work):
                if self.recording is None:
                    work()
                else:
                    self.recording.append(work)

            def upload(self, device_ptr, host_ptr, nbytes):
                fake.upload_sources.append(host_ptr)

                def copy():
                    fake.device[device_ptr][:nbytes] = np.frombuffer(ctypes.string_at(host_ptr, nbytes), np.uint8)
                self.run(copy)

            def download(self, host_ptr, device_ptr, nbytes):
                self.run(lambda: ctypes.memmove(host_ptr, fake.device[device_ptr].ctypes.data, nbytes))

            def wait(self, event):
                pass

            def synchronize(self):
                assert self.recording is None, "synchronize while capturing"

            def destroy(self):
                fake.streams.pop(self.handle)

        class Event:
            def __init__(self, timing=False):
                self.timing, self.recorded = timing, 0

            def record(self, stream):
                self.recorded += 1

            def milliseconds_since(self, start):
                assert self.timing and start.timing and self.recorded and start.recorded
                return 0.25

            def synchronize(self):
                pass

            def destroy(self):
                pass

        class GraphExec:
            def __init__(self, graph):
                self.work = fake.graphs[graph]

            def launch(self, stream):
                fake.launches += 1
                for work in self.work:
                    work()

            def destroy(self):
                fake.destroyed_graphs += 1
                self.work = []

        self.DeviceMemory, self.PinnedMemory, self.Stream, self.Event, self.GraphExec = (
            DeviceMemory, PinnedMemory, Stream, Event, GraphExec)

    def begin_capture(self, stream):
        stream.recording = []

    def end_capture(self, stream):
        work, stream.recording = stream.recording, None
        graph = len(self.graphs) + 1
        self.graphs[graph] = work
        return graph

    def destroy_graph(self, graph):
        self.graphs[graph] = []

    def current(self, device):
        return nullcontext()

    def owned_pinned_buffer(self, nbytes, device):
        buffer = (ctypes.c_byte * max(nbytes, 1))()
        self.page_locked.append((ctypes.addressof(buffer), ctypes.addressof(buffer) + len(buffer)))
        return buffer

    def is_page_locked(self, ptr, nbytes):
        return any(start <= ptr and ptr + nbytes <= stop for start, stop in self.page_locked)


class TwoHeadedModel:
    """Inputs a (N, 3) float16 at the engine and b (N, 2) float32; outputs total = sum(a) + sum(b) (N, 1) and
    double = 2a (N, 3) float16. Profile 0 takes batches 1 to 64, profile 1 (when built with two) 65 to 256."""
    io = [("a", True, F16), ("b", True, F32), ("total", False, F32), ("double", False, F16)]
    profile = {"a": ProfileRange((1, 3), (8, 3), (64, 3)), "b": ProfileRange((1, 2), (8, 2), (64, 2))}
    second = {"a": ProfileRange((65, 3), (128, 3), (256, 3)), "b": ProfileRange((65, 2), (128, 2), (256, 2))}

    @staticmethod
    def reference(a, b):
        return (a.astype(F16).astype(F32).sum(1, keepdims=True) + b.sum(1, keepdims=True),
                (2 * a.astype(F16)).astype(F32))


class FakeTensorRT:
    """The parts of TensorRT's Python API the runtime uses, with TensorRT 8.6's rule on profiles: a profile of an
    engine with dynamic shapes is held by at most one live execution context. A new context takes profile 0 when
    it is free; selecting a profile another live context holds logs TensorRT's error and returns False (the real
    one may also crash the process later). Anything TensorRT would refuse or leave undefined is recorded in
    `errors` (a False it returned) or `violations` (misuse the runtime must never commit)."""

    class ILogger:
        def __init__(self):
            pass

    class TensorLocation:
        DEVICE, HOST = "device", "host"

    class TensorFormat:
        LINEAR = "linear"

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    def __init__(self, cuda, version="8.6.1", profiles=1, refuse_capture=False, fail_execute=False):
        self.cuda, self.__version__ = cuda, version
        self.refuse_capture, self.fail_execute = refuse_capture, fail_execute
        self.ranges = [TwoHeadedModel.profile, TwoHeadedModel.second][:profiles]
        self.errors, self.violations, self.contexts, self.executions = [], [], [], 0
        self.printed, self.logger = [], None    # what TensorRT's own logger printed; the runtime's logger
        printed = self.printed

        class Logger:
            """TensorRT's logger, which prints what it is given (at WARNING and above) to stderr."""
            ERROR, WARNING = 1, 2

            def __init__(self, level):
                self.level = level

            def log(self, severity, message):
                if severity <= self.level:
                    printed.append((severity, message))
        self.Logger = Logger
        if not version.startswith("8."):
            self.ExecutionContextAllocationStrategy = type("Strategy", (), {"USER_MANAGED": "user"})

    @staticmethod
    def nptype(dtype):
        return dtype

    def Runtime(self, logger):  # noqa: N802 - TensorRT's name
        self.logger = logger
        return FakeRuntime(self)

    def live_contexts(self):
        return [c for c in (ref() for ref in self.contexts) if c is not None]


class FakeRuntime:
    def __init__(self, trt):
        self.trt = trt

    def deserialize_cuda_engine(self, plan):
        return FakeEngine(self.trt, self)


class FakeEngine:
    def __init__(self, trt, runtime):
        self.trt, self.runtime = trt, weakref.ref(runtime)
        self.num_io_tensors = len(TwoHeadedModel.io)
        self.num_optimization_profiles = len(trt.ranges)
        self.device_memory_size = self.device_memory_size_v2 = 1024
        self.holders = {}    # profile -> weakref to the context holding it

    def __del__(self):
        if self.runtime() is None:
            self.trt.violations.append("engine destroyed after its runtime")

    def get_tensor_name(self, index):
        return TwoHeadedModel.io[index][0]

    def _io(self, name):
        return next(entry for entry in TwoHeadedModel.io if entry[0] == name)

    def get_tensor_location(self, name):
        return FakeTensorRT.TensorLocation.DEVICE

    def get_tensor_format(self, name):
        return FakeTensorRT.TensorFormat.LINEAR

    def get_tensor_mode(self, name):
        return FakeTensorRT.TensorIOMode.INPUT if self._io(name)[1] else FakeTensorRT.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self._io(name)[2]

    def get_tensor_shape(self, name):
        return (-1, {"a": 3, "b": 2, "total": 1, "double": 3}[name])

    def get_tensor_profile_shape(self, name, profile):
        rng = self.trt.ranges[profile][name]
        return [rng.min, rng.opt, rng.max]

    def holder(self, profile):
        ref = self.holders.get(profile)
        return ref() if ref is not None else None

    def create_execution_context_without_device_memory(self):
        if not self.trt.__version__.startswith("8."):
            raise AttributeError("removed in TensorRT 10")
        return self._new_context()

    def create_execution_context(self, strategy):
        assert strategy == "user"
        return self._new_context()

    def _new_context(self):
        context = (FakeContext86 if self.trt.__version__.startswith("8.") else FakeContext10)(self)
        self.trt.contexts.append(weakref.ref(context))
        if self.holder(0) is None:          # profile 0 is given to a new context only when it is free
            context.profile, self.holders[0] = 0, weakref.ref(context)
        return context


# TensorRT 8.6's words for an engine it cannot capture into a CUDA graph (a Conv1D and two GRUs, on an H100).
CAPTURE_REFUSED = ("3: [executionContext.cpp::enqueueV3::2666] Error Code 3: API Usage Error (Parameter check failed "
                   "at: runtime/api/executionContext.cpp::enqueueV3::2666, condition: The CUDA stream is in capturing "
                   "mode, but this TRT engine is not stream capturable!)")


class FakeContext:
    """Its kernel reads the shapes and addresses as they are when queued (as kernel arguments are), and checks,
    when it runs from a graph, that the context was set back to the shapes it was captured at."""

    def __init__(self, engine):
        self.trt, self.engine, self.profile = engine.trt, weakref.ref(engine), -1
        self.shapes, self.addresses, self.memory = {}, {}, None

    def __del__(self):
        if self.engine() is None:
            self.trt.violations.append("context destroyed after its engine")

    def _engine(self):
        engine = self.engine()
        if engine is None:
            self.trt.violations.append("context used after its engine was destroyed")
        return engine

    def set_optimization_profile_async(self, profile, stream):
        engine = self._engine()
        holder = engine.holder(profile)
        if holder is not None and holder is not self:
            self.trt.errors.append(f"Profile {profile} has been chosen by another IExecutionContext")
            return False
        if self.profile >= 0 and engine.holder(self.profile) is self:
            del engine.holders[self.profile]
        self.profile, self.shapes = profile, {}
        engine.holders[profile] = weakref.ref(self)
        return True

    def set_input_shape(self, name, shape):
        if self.profile < 0:
            self.trt.errors.append("no optimization profile")
            return False
        rng = self.trt.ranges[self.profile][name]
        if len(shape) != len(rng.min) or not all(low <= d <= high for d, low, high in zip(shape, rng.min, rng.max)):
            self.trt.errors.append(f"shape {shape} of {name} outside profile {self.profile}")
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        batch = self.shapes["a"][0]
        return {"total": (batch, 1), "double": (batch, 3)}[name]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, handle):
        engine, stream = self._engine(), self.trt.cuda.streams[handle]
        if self.memory is None or self.profile < 0 or engine.holder(self.profile) is not self:
            self.trt.errors.append("run without device memory or without holding its profile")
            return False
        if set(self.shapes) != {"a", "b"} or set(self.addresses) != {"a", "b", "total", "double"}:
            self.trt.errors.append("run without every shape and address set")
            return False
        if stream.recording is not None and self.trt.refuse_capture:
            self.trt.logger.log(self.trt.Logger.ERROR, CAPTURE_REFUSED)
            self.trt.errors.append("enqueueV3 failed")
            return False
        if self.trt.fail_execute:
            self.trt.errors.append("enqueueV3 failed")
            return False
        self.trt.executions += 1
        shapes, addresses, device = dict(self.shapes), dict(self.addresses), self.trt.cuda.device
        assert shapes["a"][0] == shapes["b"][0]
        context, violations = weakref.ref(self), self.trt.violations

        def kernel():
            if context() is None:
                violations.append("graph replayed after its context was destroyed")
            elif context().shapes != shapes:
                violations.append(f"graph for {shapes} replayed while the context is at {context().shapes}")

            def tensor(name, dtype, shape):
                return device[addresses[name]][:runtime.nbytes(shape, dtype)].view(dtype).reshape(shape)
            batch = shapes["a"][0]
            a, b = tensor("a", F16, shapes["a"]), tensor("b", F32, shapes["b"])
            tensor("total", F32, (batch, 1))[:] = a.astype(F32).sum(1, keepdims=True) + b.sum(1, keepdims=True)
            tensor("double", F16, (batch, 3))[:] = 2 * a
        stream.run(kernel)
        return True


class FakeContext86(FakeContext):
    """TensorRT 8.6 takes the device memory as a property."""

    @property
    def device_memory(self):
        raise AttributeError("write-only")

    @device_memory.setter
    def device_memory(self, ptr):
        self.memory = ptr


class FakeContext10(FakeContext):
    """TensorRT 10 takes the device memory with its size (set_device_memory, 10.1 on)."""

    def set_device_memory(self, ptr, size):
        assert size >= 1024
        self.memory = ptr


@pytest.fixture
def fake_cuda(monkeypatch):
    cuda = FakeCuda()
    for module in CUDA_USERS:
        monkeypatch.setattr(module, "cuda", cuda)
    return cuda


def fake_engine(monkeypatch, fake_cuda, tmp_path, version="8.6.1", profiles=1, refuse_capture=False,
                fail_execute=False, **options):
    """An Engine whose TensorRT and driver are the simulation; everything else is the real runtime."""
    trt = FakeTensorRT(fake_cuda, version, profiles, refuse_capture, fail_execute)
    monkeypatch.setattr(engine_module, "_import_tensorrt", lambda: trt)
    plan = tmp_path / "two.plan"
    plan.write_bytes(b"plan")
    return Engine(plan, _probe=probe(version), **options), trt


def closed_cleanly(engine, trt):
    engine.close()
    gc.collect()
    return trt.live_contexts() == [] and trt.violations == [] and trt.errors == []


def inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3)).astype(np.float32), rng.standard_normal((batch, 2))


def assert_matches(outputs, a, b):
    total, double = TwoHeadedModel.reference(a, b)
    assert outputs[0].dtype == F32 and outputs[1].dtype == F32
    np.testing.assert_allclose(outputs[0], total, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(outputs[1], double)


def _within(ptr, array):
    return array.ctypes.data <= ptr < array.ctypes.data + array.nbytes
