"""The CUDA driver API through ctypes, for trtkit.runtime: pinned and device memory, streams, events, graphs.

libcuda.so.1 is present wherever an NVIDIA GPU is usable, so this needs no CUDA package (pycuda,
cuda-python). Everything runs in the device's primary context, the one TensorRT's own CUDA runtime
uses. Python 3.8+ and the standard library only: the runtime also ships into TensorRT containers.
"""
from __future__ import annotations

import ctypes
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_STREAM_NON_BLOCKING = 1
CU_EVENT_DISABLE_TIMING = 2
CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1
CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901
CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2
CU_MEMORYTYPE_HOST = 1

_P, _U64, _SIZE, _INT, _UINT = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_int, ctypes.c_uint

# The ABI names behind cuda.h's macros (cuStreamBeginCapture is cuStreamBeginCapture_v2, which takes the mode).
_SIGNATURES = {
    "cuInit": [_UINT],
    "cuGetErrorName": [_INT, ctypes.POINTER(ctypes.c_char_p)],
    "cuDeviceGet": [ctypes.POINTER(_INT), _INT],
    "cuDeviceGetName": [ctypes.c_char_p, _INT, _INT],
    "cuDeviceGetAttribute": [ctypes.POINTER(_INT), _INT, _INT],
    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_P), _INT],
    "cuCtxGetCurrent": [ctypes.POINTER(_P)],
    "cuCtxSetCurrent": [_P],
    "cuMemAlloc_v2": [ctypes.POINTER(_U64), _SIZE],
    "cuMemFree_v2": [_U64],
    "cuMemHostAlloc": [ctypes.POINTER(_P), _SIZE, _UINT],
    "cuMemFreeHost": [_P],
    "cuMemcpyHtoDAsync_v2": [_U64, _P, _SIZE, _P],
    "cuMemcpyDtoHAsync_v2": [_P, _U64, _SIZE, _P],
    "cuStreamCreate": [ctypes.POINTER(_P), _UINT],
    "cuStreamSynchronize": [_P],
    "cuStreamWaitEvent": [_P, _P, _UINT],
    "cuStreamDestroy_v2": [_P],
    "cuEventCreate": [ctypes.POINTER(_P), _UINT],
    "cuEventRecord": [_P, _P],
    "cuEventSynchronize": [_P],
    "cuEventDestroy_v2": [_P],
    "cuEventElapsedTime": [ctypes.POINTER(ctypes.c_float), _P, _P],
    "cuPointerGetAttribute": [_P, _INT, _U64],
    "cuStreamBeginCapture_v2": [_P, _INT],
    "cuStreamEndCapture": [_P, ctypes.POINTER(_P)],
    "cuGraphDestroy": [_P],
    "cuGraphLaunch": [_P, _P],
    "cuGraphExecDestroy": [_P],
}
# Graph instantiation, newest first: cuGraphInstantiateWithFlags (CUDA 11.4 on), then the older
# (graph exec, graph, error node, log buffer, its size) forms.
_INSTANTIATE = {
    "cuGraphInstantiateWithFlags": [ctypes.POINTER(_P), _P, ctypes.c_ulonglong],
    "cuGraphInstantiate_v2": [ctypes.POINTER(_P), _P, ctypes.POINTER(_P), ctypes.c_char_p, _SIZE],
    "cuGraphInstantiate": [ctypes.POINTER(_P), _P, ctypes.POINTER(_P), ctypes.c_char_p, _SIZE],
}


class CudaError(RuntimeError):
    """A CUDA driver call failed; code is its CUresult."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


_lock = threading.RLock()
_library: list[ctypes.CDLL] = []     # the initialised library, once loaded
_contexts: dict[int, int] = {}       # device index -> its primary context, retained for the life of the process


def _driver() -> ctypes.CDLL:
    with _lock:
        if not _library:
            _library.append(_initialised(_load()))
        return _library[0]


def _load() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise CudaError("no NVIDIA driver here (libcuda.so.1 is missing): trtkit.runtime needs a GPU host, "
                        "or a container started with the NVIDIA runtime and a GPU") from None
    for name, argtypes in _SIGNATURES.items():
        getattr(lib, name).argtypes = argtypes
    for name, argtypes in _INSTANTIATE.items():
        if hasattr(lib, name):
            getattr(lib, name).argtypes = argtypes
    return lib


def _initialised(lib: ctypes.CDLL) -> ctypes.CDLL:
    code = lib.cuInit(0)
    if code != 0:
        raise CudaError(f"no usable GPU: cuInit failed with {_error_name(lib, code)}", code)
    return lib


def _error_name(lib: ctypes.CDLL, code: int) -> str:
    name = ctypes.c_char_p()
    if lib.cuGetErrorName(code, ctypes.byref(name)) != 0 or not name.value:
        return f"CUresult {code}"
    return name.value.decode()


def _call(function: str, *args: object) -> None:
    lib = _driver()
    code = getattr(lib, function)(*args)
    if code != 0:
        raise CudaError(f"CUDA {function} failed: {_error_name(lib, code)}", code)


def _primary_context(device: int) -> int:
    """The device's primary context, the one TensorRT works in."""
    with _lock:
        if device not in _contexts:
            handle, context = _INT(), _P()
            _call("cuDeviceGet", ctypes.byref(handle), device)
            _call("cuDevicePrimaryCtxRetain", ctypes.byref(context), handle)
            _contexts[device] = context.value or 0
        return _contexts[device]


@contextmanager
def current(device: int) -> Iterator[None]:
    """Make the device's primary context current on this thread, and restore the thread's previous one after.

    The current context is per thread: every thread that calls predict() needs it, and the caller's own
    (PyTorch's, say) is left as it was."""
    context = _primary_context(device)
    previous = _P()
    _call("cuCtxGetCurrent", ctypes.byref(previous))
    if previous.value == context:   # the usual case: TensorRT's CUDA runtime made it current on this thread
        yield
        return
    _call("cuCtxSetCurrent", context)
    try:
        yield
    finally:
        _call("cuCtxSetCurrent", previous)


def device_info(device: int) -> tuple[str, str]:
    """(name, "major.minor" compute capability) of a GPU, without TensorRT."""
    _driver()
    handle = _INT()
    _call("cuDeviceGet", ctypes.byref(handle), device)
    name = ctypes.create_string_buffer(256)
    _call("cuDeviceGetName", name, len(name), handle)
    major, minor = _INT(), _INT()
    _call("cuDeviceGetAttribute", ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle)
    _call("cuDeviceGetAttribute", ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle)
    return name.value.decode(), f"{major.value}.{minor.value}"


class DeviceMemory:
    """nbytes of device memory (256-byte aligned, as TensorRT wants); ptr is a tensor address."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        ptr = _U64()
        _call("cuMemAlloc_v2", ctypes.byref(ptr), max(nbytes, 1))  # a 0-byte allocation is an error
        self.ptr = ptr.value

    def free(self) -> None:
        if self.ptr:
            _call("cuMemFree_v2", self.ptr)
            self.ptr = 0


class PinnedMemory:
    """nbytes of page-locked host memory: copies from it run at full bus speed and asynchronously."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        ptr = _P()
        _call("cuMemHostAlloc", ctypes.byref(ptr), max(nbytes, 1), 0)
        self.ptr = ptr.value or 0
        self.buffer = (ctypes.c_byte * max(nbytes, 1)).from_address(self.ptr)  # numpy views it (staging.py)

    def free(self) -> None:
        if self.ptr:
            _call("cuMemFreeHost", self.ptr)
            self.ptr = 0


def owned_pinned_buffer(nbytes: int, device: int) -> ctypes.Array:
    """Page-locked host memory as a ctypes array that frees the memory when the array (or the last numpy view
    of it, which holds it) goes."""
    with current(device):
        memory = PinnedMemory(nbytes)
    buffer = (ctypes.c_byte * max(nbytes, 1)).from_address(memory.ptr)
    weakref.finalize(buffer, _free_pinned, device, memory.ptr)
    return buffer


def _free_pinned(device: int, ptr: int) -> None:
    try:
        with current(device):
            _call("cuMemFreeHost", ptr)
    except CudaError:  # the driver is already shutting down at exit: the process frees it
        pass


def is_page_locked(ptr: int, nbytes: int) -> bool:
    """Whether host memory [ptr, ptr + nbytes) is page-locked (cuMemHostAlloc'd or registered, by anyone): the
    GPU can copy from it directly. Pageable memory is not known to the driver (the query fails)."""
    return nbytes > 0 and all(_memory_type(address) == CU_MEMORYTYPE_HOST for address in (ptr, ptr + nbytes - 1))


def _memory_type(ptr: int) -> int | None:
    kind = _UINT()
    code = _driver().cuPointerGetAttribute(ctypes.byref(kind), CU_POINTER_ATTRIBUTE_MEMORY_TYPE, ptr)
    return kind.value if code == 0 else None


class Event:
    """A point in a stream's work: streams and the host wait for it. Without timing unless asked (cheaper)."""

    def __init__(self, timing: bool = False) -> None:
        handle = _P()
        _call("cuEventCreate", ctypes.byref(handle), 0 if timing else CU_EVENT_DISABLE_TIMING)
        self.handle = handle.value

    def milliseconds_since(self, start: Event) -> float:
        """GPU time from start to this event, both recorded with timing and both done."""
        elapsed = ctypes.c_float()
        _call("cuEventElapsedTime", ctypes.byref(elapsed), start.handle, self.handle)
        return elapsed.value

    def record(self, stream: Stream) -> None:
        _call("cuEventRecord", self.handle, stream.handle)

    def synchronize(self) -> None:
        _call("cuEventSynchronize", self.handle)

    def destroy(self) -> None:
        if self.handle:
            _call("cuEventDestroy_v2", self.handle)
            self.handle = None


class Stream:
    """A non-blocking stream: it does not wait for the legacy default stream, nor it for this one."""

    def __init__(self) -> None:
        handle = _P()
        _call("cuStreamCreate", ctypes.byref(handle), CU_STREAM_NON_BLOCKING)
        self.handle = handle.value

    def upload(self, device_ptr: int, host_ptr: int, nbytes: int) -> None:
        """Host to device, ordered on this stream; from pinned memory it returns at once."""
        _call("cuMemcpyHtoDAsync_v2", device_ptr, host_ptr, nbytes, self.handle)

    def download(self, host_ptr: int, device_ptr: int, nbytes: int) -> None:
        _call("cuMemcpyDtoHAsync_v2", host_ptr, device_ptr, nbytes, self.handle)

    def wait(self, event: Event) -> None:
        """Work queued after this waits on the GPU (not the host) for the event."""
        _call("cuStreamWaitEvent", self.handle, event.handle, 0)

    def synchronize(self) -> None:
        _call("cuStreamSynchronize", self.handle)

    def destroy(self) -> None:
        if self.handle:
            _call("cuStreamDestroy_v2", self.handle)
            self.handle = None


def begin_capture(stream: Stream) -> None:
    """Record, do not run, what this thread queues on the stream until end_capture()."""
    _call("cuStreamBeginCapture_v2", stream.handle, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)


def end_capture(stream: Stream) -> int | None:
    """The recorded graph's handle, or None when the capture was invalidated (something not capturable ran)."""
    graph = _P()
    code = _driver().cuStreamEndCapture(stream.handle, ctypes.byref(graph))
    if code == CUDA_ERROR_STREAM_CAPTURE_INVALIDATED:
        return None
    if code != 0:
        raise CudaError(f"CUDA cuStreamEndCapture failed: {_error_name(_driver(), code)}", code)
    return graph.value


def destroy_graph(graph: int) -> None:
    _call("cuGraphDestroy", graph)


class GraphExec:
    """An instantiated graph: one launch replays all its copies and kernels."""

    def __init__(self, graph: int):
        handle = _P()
        lib = _driver()
        if hasattr(lib, "cuGraphInstantiateWithFlags"):
            _call("cuGraphInstantiateWithFlags", ctypes.byref(handle), graph, 0)
        else:
            name = "cuGraphInstantiate_v2" if hasattr(lib, "cuGraphInstantiate_v2") else "cuGraphInstantiate"
            _call(name, ctypes.byref(handle), graph, None, None, 0)
        self.handle = handle.value

    def launch(self, stream: Stream) -> None:
        _call("cuGraphLaunch", self.handle, stream.handle)

    def destroy(self) -> None:
        if self.handle:
            _call("cuGraphExecDestroy", self.handle)
            self.handle = None
