"""The lane: what one predict() at a time on one optimization profile runs on, small batches replayed as CUDA
graphs, larger ones streamed in chunks."""
from __future__ import annotations

import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from . import cuda
from .names import TensorSpec
from .pool import GraphCache
from .shapes import MIN_FILL_PART_BYTES, CallPlan, batch_of, split_rows
from .staging import _Filling, _Slot, _Staging, copy_rows, finish, nbytes, page_locked
from .trt import _Context, _Loaded, capture_refusal, held_log, print_log

__all__ = ["STREAM_SLOTS"]

STREAM_SLOTS = 3              # chunks in flight: one filling, one copying in or computing, one copying out


@dataclass
class _Views:
    """Arrays over the small buffers at one call's shapes, by tensor name."""
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


@dataclass
class _Graph:
    graph: cuda.GraphExec  # copy-in, run and copy-out on the lane's small buffers, at one input shape
    views: _Views          # what a replay fills and reads, made once: making them was much of a small call's time


def _release_graph(entry: _Graph) -> None:
    entry.graph.destroy()


@dataclass(frozen=True)
class _Options:
    graphs: bool
    graph_cache_size: int
    small_batch_bytes: int
    stream_chunk_bytes: int
    fill_threads: int
    time_device: bool

    def __post_init__(self) -> None:
        if min(self.graph_cache_size, self.stream_chunk_bytes, self.fill_threads) < 1 or self.small_batch_bytes < 0:
            raise ValueError("graph_cache_size, stream_chunk_bytes and fill_threads must be 1 or more, "
                             "small_batch_bytes 0 or more")


class _Lane:
    """What one predict() at a time on one optimization profile uses: streams, scratch memory, one execution
    context (the profile's, or one of them), buffers, and the CUDA graphs captured on that context."""

    def __init__(self, loaded: _Loaded, profile: int, limit: int, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 options: _Options, fill: ThreadPoolExecutor):
        self.loaded, self.inputs, self.outputs, self.options, self.fill = loaded, inputs, outputs, options, fill
        self.profile = profile
        self.graphs = GraphCache(options.graph_cache_size, _release_graph)
        self.small: _Staging | None = None
        self.slots: list[_Slot] = []
        self.device_ms: float | None = None   # the GPU time of the last call, with options.time_device
        with ExitStack() as undo:  # a lane that cannot be made in full frees what it made
            self.compute, self.upload, self.download = (self._stream(undo) for _ in range(3))
            self.started, self.finished = (self._event(undo) for _ in range(2))
            self.scratch = cuda.DeviceMemory(loaded.scratch_bytes)
            undo.callback(self.scratch.free)
            self.context = _Context(loaded, self.scratch, profile, self.compute, limit)
            undo.pop_all()

    @staticmethod
    def _stream(undo: ExitStack) -> cuda.Stream:
        stream = cuda.Stream()
        undo.callback(stream.destroy)
        return stream

    def _event(self, undo: ExitStack) -> cuda.Event | None:
        """An event with timing, for options.time_device; None without (nothing is timed)."""
        if not self.options.time_device:
            return None
        event = cuda.Event(timing=True)
        undo.callback(event.destroy)
        return event

    def _mark(self, event: cuda.Event | None, stream: cuda.Stream) -> None:
        if event is not None:
            event.record(stream)

    def _timed(self) -> None:
        """The GPU time from `started` to `finished` (both marked on this call), into device_ms."""
        if self.started is not None and self.finished is not None:
            self.finished.synchronize()
            self.device_ms = self.finished.milliseconds_since(self.started)

    def run(self, plan: CallPlan, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert plan.profile == self.profile, "a lane runs its own profile only"
        try:
            if plan.small:
                return self._run_small(plan, arrays)
            return self._run_streamed(plan, arrays)
        except BaseException:
            self._settle()
            raise

    # small batches: one run from the small buffers, replayed as a CUDA graph

    @property
    def _small(self) -> _Staging:
        assert self.small is not None, "the small buffers are made before the first small run"
        return self.small

    def _run_small(self, plan: CallPlan, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One run from the small buffers: a graph replay when this shape has one, else a run of TensorRT, then
        (graphs on) the same captured for the next call at this shape. Inputs already page-locked go to the GPU
        straight from the caller's array, ahead of the graph (their addresses change from call to call), so
        graphs are kept per shape and per set of such inputs."""
        shapes = {name: array.shape for name, array in arrays.items()}
        direct = self._page_locked_inputs(arrays)
        key = (tuple(shapes[spec.name] for spec in self.inputs), direct)
        context = self.context
        entry = self.graphs.get(key)
        if entry is not None:
            self._stage(arrays, entry.views.inputs, direct)
            # The graph holds the run as captured at these shapes; the context (which later calls may have set to
            # other shapes and buffers) is set back to them first, so that it agrees with what replays.
            context.use_shapes(shapes)
            context.bind(self._small.addresses())
            self._mark(self.started, self.compute)
            self._upload_direct(arrays, direct)
            entry.graph.launch(self.compute)
            self._mark(self.finished, self.compute)
            self.compute.synchronize()
            self._timed()
            return self._unstage(entry.views.outputs)
        output_shapes = context.set_shapes(shapes, self.outputs)
        self._ensure_small(shapes, output_shapes, plan.buffer_rows)
        context.bind(self._small.addresses())
        views = self._views(shapes, output_shapes)
        self._stage(arrays, views.inputs, direct)
        # The first run at these shapes also does TensorRT's set-up for them, which must not be captured.
        self._mark(self.started, self.compute)
        self._upload_direct(arrays, direct)
        if not self._enqueue_small(shapes, output_shapes, direct):
            raise RuntimeError("TensorRT failed to run the engine (its log above says why)")
        self._mark(self.finished, self.compute)
        self.compute.synchronize()
        self._timed()
        results = self._unstage(views.outputs)
        if self.options.graphs and self.loaded.graph_failure is None:
            self._capture(key, shapes, output_shapes, views, direct)
        return results

    def _page_locked_inputs(self, arrays: dict[str, np.ndarray]) -> frozenset:
        """The inputs the GPU copies straight from the caller's arrays (page_locked), small batch or streamed."""
        return frozenset(spec.name for spec in self.inputs if page_locked(arrays[spec.name], spec))

    def _ensure_small(self, shapes: dict, output_shapes: dict, rows: int) -> None:
        """Small buffers that hold this call, made for `rows` rows; graphs recorded on the buffers they replace
        go with them."""
        needed = self._sizes(shapes, output_shapes)
        if self.small is not None and self.small.holds(needed):
            return
        batch = batch_of(shapes)
        self.graphs.clear()
        if self.small is not None:
            self.small.free()
            self.small = None
        # Made for `rows` rows; a tensor without the batch first (its size does not grow with it) keeps its own.
        self.small = _Staging({name: max(size, size // batch * rows) for name, size in needed.items()})

    def _sizes(self, shapes: dict, output_shapes: dict) -> dict[str, int]:
        """Bytes of each input and output at these shapes."""
        return {spec.name: nbytes(found[spec.name], spec.engine_dtype)
                for specs, found in ((self.inputs, shapes), (self.outputs, output_shapes)) for spec in specs}

    def _views(self, shapes: dict, output_shapes: dict) -> _Views:
        small = self._small
        return _Views({spec.name: small.view(spec.name, spec.engine_dtype, shapes[spec.name]) for spec in self.inputs},
                      {spec.name: small.view(spec.name, spec.engine_dtype, output_shapes[spec.name])
                       for spec in self.outputs})

    def _stage(self, arrays: dict[str, np.ndarray], targets: dict[str, np.ndarray], direct: frozenset) -> None:
        """The inputs, but the `direct` ones, into their views of the small pinned buffers; a batch of some
        megabytes in parallel (the fill threads)."""
        copies = []
        for name, target in targets.items():
            if name not in direct:
                copies += self._parts(target, arrays[name], target[:1].nbytes)
        self._copy(copies)

    def _upload_direct(self, arrays: dict[str, np.ndarray], direct: frozenset) -> None:
        """The page-locked inputs, copied to the GPU from the caller's arrays on the compute stream."""
        for name in direct:
            self.compute.upload(self._small.device[name].ptr, arrays[name].ctypes.data, arrays[name].nbytes)

    def _unstage(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copies of the outputs' views (the buffers are reused), float16 made float32."""
        return {spec.name: outputs[spec.name].astype(spec.dtype) for spec in self.outputs}

    def _enqueue_small(self, shapes: dict, output_shapes: dict, direct: frozenset) -> bool:
        """Copy in (but the `direct` inputs), run, copy out, all on the compute stream; False when TensorRT refused
        to run."""
        small = self._small
        for spec in self.inputs:
            if spec.name in direct:
                continue
            self.compute.upload(small.device[spec.name].ptr, small.host[spec.name].ptr,
                                nbytes(shapes[spec.name], spec.engine_dtype))
        ran = self.context.execute(self.compute)
        for spec in self.outputs:
            self.compute.download(small.host[spec.name].ptr, small.device[spec.name].ptr,
                                  nbytes(output_shapes[spec.name], spec.engine_dtype))
        return ran

    def _capture(self, key: tuple, shapes: dict, output_shapes: dict, views: _Views, direct: frozenset) -> None:
        """The run at these shapes recorded as a graph for the next call; if TensorRT or CUDA cannot, graphs go off
        for the engine, with one warning (and none of TensorRT's errors about it: held_log)."""
        with held_log() as held:
            try:
                graph, why = self._record(shapes, output_shapes, direct), None
            except cuda.CudaError as e:
                graph, why = None, str(e)
        if graph is None:
            if self.loaded.graphs_failed(why or capture_refusal(held)):
                warnings.warn(f"trtkit.runtime: CUDA graphs are off for this engine ({self.loaded.graph_failure}); "
                              "small batches run without them", RuntimeWarning, stacklevel=5)
            return
        print_log(held)
        self.graphs.put(key, _Graph(graph, views))

    def _record(self, shapes: dict, output_shapes: dict, direct: frozenset) -> cuda.GraphExec | None:
        """The copy-in, run and copy-out, recorded (not run) as a CUDA graph; None when not capturable."""
        cuda.begin_capture(self.compute)
        try:
            ran = self._enqueue_small(shapes, output_shapes, direct)
        except BaseException:
            captured = cuda.end_capture(self.compute)
            if captured is not None:
                cuda.destroy_graph(captured)
            raise
        graph = cuda.end_capture(self.compute)
        if graph is None:
            return None
        try:
            return cuda.GraphExec(graph) if ran else None
        finally:
            cuda.destroy_graph(graph)

    # larger batches: chunks streamed through pinned buffers on three streams

    def _run_streamed(self, plan: CallPlan, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        context = self.context
        samples = {name: tuple(array.shape[1:]) for name, array in arrays.items()}
        full = {name: (plan.buffer_rows,) + sample for name, sample in samples.items()}
        output_shapes = context.set_shapes(full, self.outputs)
        not_batched = [name for name, shape in output_shapes.items() if not shape or shape[0] != plan.buffer_rows]
        if not_batched:
            raise ValueError(f"outputs {not_batched} do not have the batch first, so the batch cannot be split "
                             "into runs; pass at most the profile's largest batch")
        self._ensure_slots(self._sizes(full, output_shapes))
        batch = plan.chunks[-1][1]
        results = {spec.name: np.empty((batch,) + output_shapes[spec.name][1:], spec.dtype) for spec in self.outputs}
        direct = self._page_locked_inputs(arrays)
        in_flight: deque = deque()   # (slot, start, stop) of the chunks queued on the GPU, oldest first
        self._mark(self.started, self.upload)
        filling = self._fill(self.slots[0], arrays, *plan.chunks[0], direct)
        try:
            for index, (start, stop) in enumerate(plan.chunks):
                slot, sources = self.slots[index % len(self.slots)], filling.wait()
                if index + 1 < len(plan.chunks):
                    # The next chunk fills on the fill threads while this one is queued: TensorRT's enqueue of a
                    # chunk takes about half a millisecond of this thread.
                    following = self.slots[(index + 1) % len(self.slots)]
                    while in_flight and in_flight[0][0] is following:
                        self._collect(in_flight.popleft(), results)
                    filling = self._fill(following, arrays, *plan.chunks[index + 1], direct)
                self._launch(slot, context, samples, stop - start, sources)
                in_flight.append((slot, start, stop))
        finally:
            filling.wait(quietly=True)  # no fill thread may still write into a slot once this call is over
        self._mark(self.finished, self.download)
        while in_flight:
            self._collect(in_flight.popleft(), results)
        self._timed()
        return results

    def _ensure_slots(self, sizes: dict[str, int]) -> None:
        if self.slots and all(slot.staging.holds(sizes) for slot in self.slots):
            return
        self._free_slots()
        for _ in range(STREAM_SLOTS):
            self.slots.append(_Slot(sizes))

    def _fill(self, slot: _Slot, arrays: dict[str, np.ndarray], start: int, stop: int, direct: frozenset) -> _Filling:
        """Start copying the chunk's rows of every input into the slot's pinned buffers (cast to the engine's
        types), except the inputs in `direct`, already page-locked. Its wait() returns where each input's chunk is
        copied to the GPU from, once they are there."""
        copies, sources = [], {}
        for spec in self.inputs:
            source = arrays[spec.name]
            if spec.name in direct:
                sources[spec.name] = source.ctypes.data + start * source[:1].nbytes
                continue
            target = slot.staging.view(spec.name, spec.engine_dtype, (stop - start,) + source.shape[1:])
            copies += self._parts(target, source[start:stop], target[:1].nbytes)
            sources[spec.name] = slot.staging.host[spec.name].ptr
        return _Filling(sources, self._start_copy(copies))

    def _launch(self, slot: _Slot, context: _Context, samples: dict, rows: int, sources: dict[str, int]) -> None:
        """Queue the chunk's copy-in (from `sources`), run and copy-out; each stream waits on the GPU for the step
        before."""
        staging = slot.staging
        for spec in self.inputs:
            self.upload.upload(staging.device[spec.name].ptr, sources[spec.name],
                               nbytes((rows,) + samples[spec.name], spec.engine_dtype))
        slot.uploaded.record(self.upload)
        self.compute.wait(slot.uploaded)
        shapes = {name: (rows,) + sample for name, sample in samples.items()}
        if any(context.shapes.get(name) != shape for name, shape in shapes.items()):
            self.compute.synchronize()  # shapes change between runs, never under one still running
        output_shapes = context.set_shapes(shapes, self.outputs)
        context.bind(staging.addresses())
        if not context.execute(self.compute):
            raise RuntimeError("TensorRT failed to run the engine (its log above says why)")
        slot.computed.record(self.compute)
        self.download.wait(slot.computed)
        for spec in self.outputs:
            self.download.download(staging.host[spec.name].ptr, staging.device[spec.name].ptr,
                                   nbytes(output_shapes[spec.name], spec.engine_dtype))
        slot.downloaded.record(self.download)

    def _collect(self, done: tuple[_Slot, int, int], results: dict[str, np.ndarray]) -> None:
        """Wait for a chunk's copy-out, then its rows into the results (float16 becomes float32 here)."""
        slot, start, stop = done
        slot.downloaded.synchronize()
        copies = []
        for spec in self.outputs:
            target = results[spec.name][start:stop]
            source = slot.staging.view(spec.name, spec.engine_dtype, target.shape)
            copies += self._parts(target, source, source[:1].nbytes)
        self._copy(copies)

    def _parts(self, target: np.ndarray, source: np.ndarray, row_bytes: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(target, source) of equal rows, split by rows into parts for the fill threads (row_bytes: of the pinned
        side, which sets how many parts are worth it)."""
        return [(target[low:high], source[low:high])
                for low, high in split_rows(len(target), row_bytes, self.options.fill_threads)]

    def _copy(self, copies: list[tuple[np.ndarray, np.ndarray]]) -> None:
        finish(self._start_copy(copies))

    def _start_copy(self, copies: list[tuple[np.ndarray, np.ndarray]]) -> list[Future]:
        """The copies: made here when there is one or they are small (no futures back), else handed to the fill
        threads (their futures back)."""
        if len(copies) <= 1 or sum(target.nbytes for target, _ in copies) < MIN_FILL_PART_BYTES:
            for target, source in copies:
                copy_rows(target, source)
            return []
        return [self.fill.submit(copy_rows, target, source) for target, source in copies]

    def _settle(self) -> None:
        """After a failure: let queued work finish, so no copy lands in a buffer the next call reuses."""
        for stream in (self.upload, self.compute, self.download):
            try:
                stream.synchronize()
            except cuda.CudaError:
                pass

    def _free_slots(self) -> None:
        for slot in self.slots:
            slot.free()
        self.slots = []

    def close(self) -> None:
        """Graphs first (they replay the context's work), then the context, then the memory it used."""
        self._settle()
        self.graphs.clear()
        self.context.release()
        self._free_slots()
        if self.small is not None:
            self.small.free()
            self.small = None
        self.scratch.free()
        for stream in (self.upload, self.compute, self.download):
            stream.destroy()
        for event in (self.started, self.finished):
            if event is not None:
                event.destroy()
