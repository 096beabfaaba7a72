"""The Engine: a trtkit engine, ready to predict."""
from __future__ import annotations

import functools
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from . import cuda
from .compat import (
    Host,
    IncompatibleEngine,
    Manifest,
    check_plan_digest,
    compatibility,
    load_manifest,
    locate,
    require_supported_tensorrt,
)
from .lane import _Lane, _Options
from .names import TensorSpec, arrange_outputs, check_dtypes, map_inputs, tensor_specs
from .pool import LanePool
from .shapes import CallPlan, plan_call
from .staging import copy_rows, nbytes, pinned_empty
from .trt import _import_tensorrt, _Loaded, probe_host

__all__ = ["SMALL_BATCH_BYTES", "STREAM_CHUNK_BYTES", "FILL_THREADS", "Engine"]

SMALL_BATCH_BYTES = 16 << 20   # Engine's defaults: input bytes up to which a batch is one graph run,
STREAM_CHUNK_BYTES = 64 << 20  # and input bytes per streamed chunk (H100, batch 100000 of 845 MB: 64 MB chunks and
FILL_THREADS = 16              # 16 fill threads took 48 ms, 32 MB and 8 took 58: benchmarks/runtime_check.py --sweep)


class Engine:
    """A trtkit engine, ready to predict; see the module's docstring. Close it (or use `with`) to free the GPU
    memory, pinned memory and threads it holds.

    path: a trtkit output folder (model.plan and trtkit.json), or a .plan file (checked against a trtkit.json
    beside it when that lists it). device: the GPU's index. graphs: replay small batches as CUDA graphs.
    graph_cache_size: graphs kept per lane. max_lanes: predict() calls that run at once, at most one per
    optimization profile (TensorRT's limit of one execution context a profile). fill_threads: threads
    that copy chunks between your arrays and pinned memory. small_batch_bytes: input bytes up to which a batch
    is one run from the small buffers (a graph). stream_chunk_bytes: input bytes per streamed chunk.
    check: compare the engine with trtkit.json before loading it. time_device: time each call's work on the GPU
    (copies in and out included) with CUDA events; last_device_ms then holds the last finished call's.
    """

    def __init__(self, path: str | os.PathLike, *, device: int = 0, graphs: bool = True,
                 graph_cache_size: int = 16, max_lanes: int = 2, fill_threads: int | None = None,
                 small_batch_bytes: int = SMALL_BATCH_BYTES, stream_chunk_bytes: int = STREAM_CHUNK_BYTES,
                 check: bool = True, time_device: bool = False,
                 _probe: Callable[[int], Host] = probe_host):
        self._options = _Options(graphs, graph_cache_size, small_batch_bytes, stream_chunk_bytes,
                                 min(FILL_THREADS, os.cpu_count() or 1) if fill_threads is None else fill_threads,
                                 time_device)
        self.last_device_ms: float | None = None
        if max_lanes < 1:
            raise ValueError("max_lanes must be at least 1")
        plan_path, manifest_path = locate(os.fspath(path))
        with open(plan_path, "rb") as f:
            plan = f.read()
        manifest = load_manifest(manifest_path, os.path.basename(plan_path), check)
        self.device = device
        self.host = _probe(device)  # before TensorRT loads anything: its own errors say less
        self.built = manifest.built if manifest is not None else None
        if check and manifest is not None:
            check_plan_digest(plan, manifest, plan_path)
            tuned_elsewhere = compatibility(manifest.built, self.host)
            if tuned_elsewhere:
                warnings.warn(tuned_elsewhere, RuntimeWarning, stacklevel=2)
        require_supported_tensorrt(self.host.tensorrt)
        trt = _import_tensorrt()
        with cuda.current(device):
            self._loaded = _Loaded(trt, plan)
        self.inputs, self.outputs = self._specs(manifest, check)
        self.profiles = self._loaded.profiles(self.inputs)
        per_profile = self._loaded.contexts_per_profile(max_lanes)
        self._lanes = LanePool(functools.partial(self._new_lane, per_profile), max_lanes, per_profile)  # on first use
        self._fill = ThreadPoolExecutor(self._options.fill_threads, "trtkit-fill")
        self._closing = threading.Lock()
        # Plans by shape (pure, and thread-safe to cache): working one out was a fifth of a small call's host time.
        self._plan = functools.lru_cache(maxsize=graph_cache_size)(self._plan_for)

    def _specs(self, manifest: Manifest | None, check: bool) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """The inputs and outputs by the manifest's names; with check off, by the engine's own where those do not
        match it."""
        try:
            return tensor_specs(self._loaded.io(), manifest.names if manifest else None)
        except IncompatibleEngine as e:
            if check:
                raise
            warnings.warn(f"trtkit.runtime: {e}; check=False, so the engine's own names are used", RuntimeWarning,
                          stacklevel=3)
            return tensor_specs(self._loaded.io(), None)

    def _plan_for(self, shapes_in_order: tuple[tuple[int, ...], ...]) -> CallPlan:
        """How a call with these input shapes (in input order) runs; kept per shape by __init__'s cache."""
        shapes = {spec.name: shape for spec, shape in zip(self.inputs, shapes_in_order)}
        row_bytes = sum(nbytes(shapes[spec.name][1:], spec.engine_dtype) for spec in self.inputs)
        return plan_call(self.profiles, shapes, row_bytes, self._options.small_batch_bytes,
                         self._options.stream_chunk_bytes)

    def _new_lane(self, limit: int, profile: int) -> _Lane:
        return _Lane(self._loaded, profile, limit, self.inputs, self.outputs, self._options, self._fill)

    def predict(self, x: Any, as_dict: bool = False) -> Any:
        """Outputs for inputs x: an array (one input), a list by position, or a dict by engine or Keras name.

        Returns one array, or a list in the model's output order (as_dict: a dict by output name)."""
        arrays = map_inputs(x, self.inputs)
        check_dtypes(arrays, self.inputs)
        plan = self._plan(tuple(tuple(int(d) for d in arrays[spec.name].shape) for spec in self.inputs))
        with cuda.current(self.device), self._lanes.lane(plan.profile) as lane:
            results = lane.run(plan, arrays)
            self.last_device_ms = lane.device_ms
        return arrange_outputs(results, self.outputs, as_dict)

    def pinned_copy(self, x: Any) -> dict[str, np.ndarray]:
        """Page-locked copies of inputs x (as predict() takes them) in the engine's types, by engine name:
        predict() copies them to the GPU straight from where they are. For inputs you send more than once; float32
        data for an engine with float16 inputs (build --io-precision fp16) is converted here, once."""
        arrays = map_inputs(x, self.inputs)
        check_dtypes(arrays, self.inputs)
        copies = {}
        for spec in self.inputs:
            copies[spec.name] = pinned_empty(arrays[spec.name].shape, spec.engine_dtype, self.device)
            copy_rows(copies[spec.name], arrays[spec.name])
        return copies

    def close(self) -> None:
        """Wait for running calls, then free the lanes (their graphs, contexts and memory), the engine, its runtime
        and the fill threads, in that order. Calls from several threads at once free them once, in turn."""
        with self._closing, cuda.current(self.device):
            self._lanes.close(_Lane.close)
            self._loaded.close()
            self._fill.shutdown()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
