"""The CUDA driver API through ctypes: GPU name, device memory, streams, event timing.

TensorRT needs only raw device pointers and a stream handle, and the images
this runs in may have neither pycuda nor cuda-python, so
libcuda.so.1 is called directly. Everything runs in the device's primary
context, the one TensorRT's own CUDA runtime uses.
"""
import ctypes

from trtkit_steps.common import StepError

CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_STREAM_NON_BLOCKING = 1

_P, _U64, _SIZE, _INT, _UINT = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_int, ctypes.c_uint

_SIGNATURES = {
    "cuInit": [_UINT],
    "cuGetErrorName": [_INT, ctypes.POINTER(ctypes.c_char_p)],
    "cuDeviceGet": [ctypes.POINTER(_INT), _INT],
    "cuDeviceGetName": [ctypes.c_char_p, _INT, _INT],
    "cuDeviceGetAttribute": [ctypes.POINTER(_INT), _INT, _INT],
    "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_P), _INT],
    "cuCtxSetCurrent": [_P],
    "cuMemAlloc_v2": [ctypes.POINTER(_U64), _SIZE],
    "cuMemFree_v2": [_U64],
    "cuMemcpyHtoDAsync_v2": [_U64, _P, _SIZE, _P],
    "cuMemcpyDtoHAsync_v2": [_P, _U64, _SIZE, _P],
    "cuStreamCreate": [ctypes.POINTER(_P), _UINT],
    "cuStreamSynchronize": [_P],
    "cuStreamDestroy_v2": [_P],
    "cuEventCreate": [ctypes.POINTER(_P), _UINT],
    "cuEventRecord": [_P, _P],
    "cuEventSynchronize": [_P],
    "cuEventElapsedTime": [ctypes.POINTER(ctypes.c_float), _P, _P],
    "cuEventDestroy_v2": [_P],
}

_state = {}


def _driver():
    """libcuda, initialised once with device 0's primary context current."""
    if "lib" not in _state:
        _state["lib"] = _initialised(_load())
    return _state["lib"]


def _load():
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise StepError("no GPU driver in the container (libcuda.so.1 is missing): "
                        "run it with the NVIDIA runtime and a GPU") from None
    for name, argtypes in _SIGNATURES.items():
        getattr(lib, name).argtypes = argtypes
    return lib


def _initialised(lib):
    code = lib.cuInit(0)
    if code != 0:
        raise StepError(f"no usable GPU: cuInit failed with {_error_name(lib, code)}")
    device, context = _INT(), _P()
    _check(lib, "cuDeviceGet", ctypes.byref(device), 0)
    _check(lib, "cuDevicePrimaryCtxRetain", ctypes.byref(context), device)
    _check(lib, "cuCtxSetCurrent", context)
    _state["device"] = device.value
    return lib


def _error_name(lib, code):
    name = ctypes.c_char_p()
    if lib.cuGetErrorName(code, ctypes.byref(name)) != 0 or not name.value:
        return f"CUresult {code}"
    return name.value.decode()


def _check(lib, function, *args):
    code = getattr(lib, function)(*args)
    if code != 0:
        raise StepError(f"CUDA {function} failed: {_error_name(lib, code)}")


def _call(function, *args):
    _check(_driver(), function, *args)


def device_info():
    """(name, (major, minor)) of the GPU that TensorRT builds for and runs on."""
    _driver()
    device = _state["device"]
    name = ctypes.create_string_buffer(256)
    _call("cuDeviceGetName", name, len(name), device)
    major, minor = _INT(), _INT()
    _call("cuDeviceGetAttribute", ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
    _call("cuDeviceGetAttribute", ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
    return name.value.decode(), (major.value, minor.value)


class DeviceBuffer(object):
    """Device memory of nbytes; ptr is what TensorRT takes as a tensor address."""

    def __init__(self, nbytes):
        self.nbytes = nbytes
        ptr = _U64()
        _call("cuMemAlloc_v2", ctypes.byref(ptr), max(nbytes, 1))  # a 0-byte allocation is an error
        self.ptr = ptr.value

    def free(self):
        if self.ptr:
            _call("cuMemFree_v2", self.ptr)
            self.ptr = 0


class Stream(object):
    """A non-blocking stream. Copies go on it too: a synchronous copy runs on the
    legacy default stream, which a non-blocking stream does not wait for."""

    def __init__(self):
        handle = _P()
        _call("cuStreamCreate", ctypes.byref(handle), CU_STREAM_NON_BLOCKING)
        self.handle = handle.value

    def upload(self, buffer, array):
        """Host to device; array must be C-contiguous and fit the buffer."""
        _call("cuMemcpyHtoDAsync_v2", buffer.ptr, array.ctypes.data, array.nbytes, self.handle)

    def download(self, array, buffer):
        """Device to host; complete once synchronize() returns."""
        _call("cuMemcpyDtoHAsync_v2", array.ctypes.data, buffer.ptr, array.nbytes, self.handle)

    def synchronize(self):
        _call("cuStreamSynchronize", self.handle)

    def destroy(self):
        if self.handle:
            _call("cuStreamDestroy_v2", self.handle)
            self.handle = None


class EventTimer(object):
    """GPU milliseconds of the work a stream runs between start() and stop()."""

    def __init__(self):
        self._begin, self._end = _P(), _P()
        _call("cuEventCreate", ctypes.byref(self._begin), 0)
        _call("cuEventCreate", ctypes.byref(self._end), 0)

    def start(self, stream):
        _call("cuEventRecord", self._begin, stream.handle)

    def stop(self, stream):
        """Wait for the stream's work to finish; returns the milliseconds since start()."""
        _call("cuEventRecord", self._end, stream.handle)
        _call("cuEventSynchronize", self._end)
        ms = ctypes.c_float()
        _call("cuEventElapsedTime", ctypes.byref(ms), self._begin, self._end)
        return ms.value

    def destroy(self):
        for event in (self._begin, self._end):
            if event.value:
                _call("cuEventDestroy_v2", event)
                event.value = None
