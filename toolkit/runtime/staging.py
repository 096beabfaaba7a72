"""Staging: pinned host buffers and device buffers, and the copies between them and the caller's arrays."""
from __future__ import annotations

import ctypes
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import cuda
from .names import TensorSpec
from .shapes import MIN_FILL_PART_BYTES, volume

__all__ = ["nbytes", "host_view", "pinned_empty", "copy_rows", "page_locked", "finish"]


def nbytes(shape: Sequence[int], dtype: np.dtype) -> int:
    return volume(shape) * dtype.itemsize


def host_view(buffer: Any, dtype: np.dtype, shape: Sequence[int]) -> np.ndarray:
    """An array over the first bytes of a (pinned) buffer: writes go into the buffer."""
    return np.frombuffer(buffer, dtype=dtype, count=volume(shape)).reshape(tuple(shape))


def pinned_empty(shape: Sequence[int], dtype: Any = np.float32, device: int = 0) -> np.ndarray:
    """An uninitialised array in page-locked host memory, freed when the array (and every view of it) is gone.

    Fill it with your input (write into it: `x[:] = ...`, or read data into it) and pass it to predict(): a
    streamed batch is then copied to the GPU straight from it at the bus's speed, with no staging copy on the
    host. Worth it for large batches you make more than once; page-locked memory is taken from the host's RAM
    and cannot be swapped out."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    return host_view(cuda.owned_pinned_buffer(nbytes(shape, dtype), device), dtype, shape)


def copy_rows(target: np.ndarray, source: np.ndarray) -> None:
    """source into target (same shape): a plain memmove where a fill thread's share is copied without a cast
    between contiguous arrays (ctypes lets go of the GIL for it, whichever numpy this is), else np.copyto, casting
    within a kind (for a small copy that is five times quicker than reaching the pointers through ctypes)."""
    if (target.nbytes >= MIN_FILL_PART_BYTES and target.dtype == source.dtype and target.flags.c_contiguous
            and source.flags.c_contiguous):
        assert target.shape == source.shape, "copies are of equal rows"
        ctypes.memmove(target.ctypes.data, source.ctypes.data, target.nbytes)
    else:
        np.copyto(target, source, casting="same_kind")


def page_locked(array: np.ndarray, spec: TensorSpec) -> bool:
    """Whether the GPU can copy this input straight from the caller's array: page-locked memory, laid out as the
    engine takes it (C order, the engine's dtype)."""
    return (array.dtype == spec.engine_dtype and array.flags.c_contiguous
            and cuda.is_page_locked(array.ctypes.data, array.nbytes))


class _Staging:
    """A pinned host buffer and a device buffer per tensor, of the given sizes."""

    def __init__(self, sizes: dict[str, int]):
        self.sizes = dict(sizes)
        self.host: dict[str, cuda.PinnedMemory] = {}
        self.device: dict[str, cuda.DeviceMemory] = {}
        try:
            for name, size in sizes.items():
                self.host[name] = cuda.PinnedMemory(size)
                self.device[name] = cuda.DeviceMemory(size)
        except BaseException:
            self.free()
            raise

    def holds(self, sizes: dict[str, int]) -> bool:
        return all(self.sizes.get(name, -1) >= size for name, size in sizes.items())

    def view(self, name: str, dtype: np.dtype, shape: Sequence[int]) -> np.ndarray:
        return host_view(self.host[name].buffer, dtype, shape)

    def addresses(self) -> dict[str, int]:
        return {name: memory.ptr for name, memory in self.device.items()}

    def free(self) -> None:
        for memory in list(self.host.values()) + list(self.device.values()):
            memory.free()


def finish(futures: Sequence[Future], quietly: bool = False) -> None:
    """Wait for all the futures (one failing does not leave the others running), then raise the first failure
    unless quietly."""
    if not futures:  # copies made on the calling thread: concurrent.futures.wait of none still takes a few µs
        return
    wait_futures(futures)
    if not quietly:
        for future in futures:
            future.result()


@dataclass
class _Filling:
    """A streamed chunk's fill under way: where the GPU copies each input's chunk from, once the copies are done."""
    sources: dict[str, int]
    copies: list[Future]

    def wait(self, quietly: bool = False) -> dict[str, int]:
        finish(self.copies, quietly)
        return self.sources


class _Slot:
    """One streamed chunk's buffers, and the events that order its copy-in, run and copy-out."""

    def __init__(self, sizes: dict[str, int]):
        self.staging = _Staging(sizes)
        self.uploaded, self.computed, self.downloaded = cuda.Event(), cuda.Event(), cuda.Event()

    def free(self) -> None:
        self.staging.free()
        for event in (self.uploaded, self.computed, self.downloaded):
            event.destroy()
