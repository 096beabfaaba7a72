"""TensorRT: the deserialized engine, and the execution context of a lane."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from . import cuda
from .compat import Host, IncompatibleEngine
from .names import TensorSpec
from .shapes import ProfileRange

__all__ = ["CONTEXTS_PER_PROFILE", "probe_host"]

# Live execution contexts one optimization profile of an engine with dynamic shapes may have. TensorRT 8.6 refuses a
# second ("Profile 0 has been chosen by another IExecutionContext", seen on an H200), and NvInferRuntime.h of 10.x
# and 11.x still says "each execution context in concurrent use must use a separate optimization profile": one, on
# every release. The headers set no such limit for an engine without dynamic shapes, but that is unconfirmed on a
# GPU here, so it has one lane too.
CONTEXTS_PER_PROFILE = 1

_loggers: list = []
# What TensorRT logs on a thread while a lane there records a CUDA graph: held (held_log), not printed.
_holding = threading.local()


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as e:
        raise ImportError("trtkit.runtime needs TensorRT's Python package: pip install 'trtkit[runtime]' on a GPU "
                          f"host, or run it in NVIDIA's TensorRT container ({e})") from None
    return tensorrt


def _logger(trt: Any) -> Any:
    """One logger for every runtime (TensorRT warns when a second one differs): TensorRT's own, printing its
    warnings and errors, but for what it logs on a thread that holds its log (held_log)."""
    if not _loggers:
        _loggers.append(_holding_logger(trt))
    return _loggers[0]


def _holding_logger(trt: Any) -> Any:
    printer = trt.Logger(trt.Logger.WARNING)

    class HoldingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)   # TensorRT's bindings need the base made explicitly

        def log(self, severity: Any, message: str) -> None:
            held = getattr(_holding, "messages", None)
            if held is None:
                printer.log(severity, message)
            else:
                held.append((severity, message))

    return HoldingLogger()


@contextmanager
def held_log() -> Iterator[list[tuple[Any, str]]]:
    """What TensorRT logs on this thread meanwhile, held in the list yielded instead of printed. A lane records
    its CUDA graphs so: TensorRT 8.6 tells of an engine it cannot capture (a Conv1D and GRUs, on an H100) by its
    own "Error Code 3: API Usage Error (... this TRT engine is not stream capturable!)" and has no call that
    says so before, so trtkit says it in one warning of its own (capture_refusal) and prints the rest
    (print_log) when the capture went well."""
    held: list[tuple[Any, str]] = []
    _holding.messages = held
    try:
        yield held
    finally:
        _holding.messages = None


def print_log(held: list[tuple[Any, str]]) -> None:
    for severity, message in held:
        _loggers[0].log(severity, message)


def capture_refusal(held: list[tuple[Any, str]]) -> str:
    """Why TensorRT's run could not be captured, in one line, from what TensorRT logged meanwhile."""
    if any("stream capturable" in message for _, message in held):
        return "TensorRT cannot capture this engine's run: it is not stream capturable"
    said = next((message.strip().splitlines()[0] for _, message in held if message.strip()), None)
    return f"TensorRT's run could not be captured: {said}" if said else "TensorRT's run could not be captured"


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
        self.graph_failure: str | None = None  # why CUDA graphs are off for every lane, once a capture failed

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

    def graphs_failed(self, why: str) -> bool:
        """CUDA graphs off for the engine: True for the first lane to find it (it warns), False for later ones."""
        with self._lock:
            first = self.graph_failure is None
            self.graph_failure = self.graph_failure or why
        return first

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
