"""The GPU for the engine steps: trtkit.runtime's CUDA driver binding, with its errors as step errors.

The box gets the package trtkit.runtime beside the scripts as trtkit_runtime (transfer.py), so the
steps and the runtime share one binding. It needs Python 3.8, which every image with TensorRT 8 or newer has
(Ubuntu 20.04 onwards); it is imported on first use, so that the steps still load in older images to say what
they cannot do.
"""
import functools
from contextlib import contextmanager

from trtkit_steps.errors import StepError

DEVICE = 0   # the box sees only the GPUs it was given; TensorRT builds for and runs on the first


def binding():
    """trtkit.runtime's cuda module."""
    try:
        from trtkit_runtime import cuda as driver
    except (ImportError, SyntaxError) as e:   # SyntaxError: a Python older than 3.8
        raise StepError("this image cannot reach the GPU from Python: %s" % e) from None
    return driver


@contextmanager
def cuda():
    """The binding, with the GPU's primary context (TensorRT's) current and its errors as StepError."""
    module = binding()
    try:
        with module.current(DEVICE):
            yield module
    except module.CudaError as e:
        raise StepError(str(e)) from None


def on_gpu(method):
    """A method whose CUDA calls need the primary context current, and whose CUDA errors are step errors."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with cuda():
            return method(*args, **kwargs)
    return wrapped


def device_info():
    """(name, "major.minor" compute capability) of the GPU that TensorRT builds for and runs on."""
    with cuda() as module:
        return module.device_info(DEVICE)
