"""trtkit.runtime.lane on the simulation (tests/runtime_sim.py): graph replay, streaming, page-locked input."""

import numpy as np
import pytest
from runtime_sim import F16, F32, _within, assert_matches, closed_cleanly, fake_engine, inputs

from trtkit import runtime


@pytest.mark.parametrize("version", ["8.6.1", "10.0.1"])
def test_small_batches_run_once_then_replay_their_graph(monkeypatch, fake_cuda, tmp_path, version):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, version=version)
    a, b = inputs(5)
    assert_matches(engine.predict([a, b]), a, b)        # a run, then the same queued again under capture
    assert trt.executions == 2 and fake_cuda.launches == 0
    a2, b2 = inputs(5, seed=1)
    assert_matches(engine.predict({"b": b2, "a": a2}), a2, b2)
    assert trt.executions == 2 and fake_cuda.launches == 1   # replayed: TensorRT was not called again
    assert list(engine.predict([a, b], as_dict=True)) == ["total", "double"]
    assert len(trt.contexts) == 1                             # graphs share the lane's one context
    assert closed_cleanly(engine, trt)


def test_graphs_of_several_shapes_share_the_context_and_replay_after_it_changed(monkeypatch, fake_cuda, tmp_path):
    """Each replay finds the context set back to its graph's shapes (the simulation checks), after other
    shapes, and after a streamed batch, ran on that context."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=40 * 14, stream_chunk_bytes=200,
                              max_lanes=1)
    for batch, seed in [(5, 0), (7, 1), (5, 2), (50, 3), (7, 4), (5, 5), (7, 6)]:
        a, b = inputs(batch, seed)
        assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 4 and len(trt.contexts) == 1
    assert closed_cleanly(engine, trt)


def test_the_graph_cache_is_bounded_per_lane(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, graph_cache_size=2, max_lanes=1)
    for batch in (1, 2, 3, 1):
        a, b = inputs(batch, seed=batch)
        assert_matches(engine.predict([a, b]), a, b)
    # 1, 2 and 3 were captured; 3 evicted 1 (destroyed), and 1 came back as a new capture, evicting 2
    assert fake_cuda.destroyed_graphs == 2 and len(trt.contexts) == 1
    assert closed_cleanly(engine, trt)
    assert fake_cuda.destroyed_graphs == 4


def test_small_buffers_are_made_once_for_the_largest_small_batch(monkeypatch, fake_cuda, tmp_path):
    """Here 4 rows (by bytes at the engine: 3 float16 + 2 float32 a row); their graphs stay as batches grow."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=4 * (3 * 2 + 2 * 4), max_lanes=1)
    a, b = inputs(2)
    assert_matches(engine.predict([a, b]), a, b)
    a, b = inputs(4)                      # fits the buffers made for 4 rows: a second graph
    assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.destroyed_graphs == 0
    a, b = inputs(5)                      # over small_batch_bytes: streamed, small buffers stay
    assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.destroyed_graphs == 0
    assert closed_cleanly(engine, trt)


def test_an_engine_that_cannot_be_captured_runs_without_graphs(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, refuse_capture=True, max_lanes=1)
    a, b = inputs(3)
    with pytest.warns(RuntimeWarning, match="CUDA graphs are off for this engine"):
        assert_matches(engine.predict([a, b]), a, b)
    for seed in (1, 2):
        a, b = inputs(3, seed)
        assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 0 and trt.executions == 3 and len(trt.contexts) == 1
    assert trt.errors == ["enqueueV3 failed"]           # the refused capture, once
    trt.errors.clear()
    assert closed_cleanly(engine, trt)


def test_graphs_off(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, graphs=False, max_lanes=1)
    for seed in range(3):
        a, b = inputs(7, seed)
        assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 0 and len(trt.contexts) == 1 and trt.executions == 3
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("batch", [64, 65, 1000, 1001])
def test_large_batches_stream_in_chunks_into_one_result(monkeypatch, fake_cuda, tmp_path, batch):
    """Chunks of at most 64 rows (the profile's max) or stream_chunk_bytes; float16 in and out at the engine."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=0, stream_chunk_bytes=600,
                              fill_threads=3, max_lanes=1)
    a, b = inputs(batch)
    outputs = engine.predict([a, b])
    assert_matches(outputs, a, b)
    assert trt.executions == len(runtime.plan_chunks(batch, runtime.stream_rows(3 * 2 + 2 * 4, 1, 64, 600), 1, 64))
    assert closed_cleanly(engine, trt)


def test_page_locked_inputs_stream_to_the_gpu_straight_from_the_callers_array(monkeypatch, fake_cuda, tmp_path):
    """pinned_empty() arrays of the engine's dtypes are copied from where they are, chunk by chunk; the results
    are those of the staged path."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=0, stream_chunk_bytes=600,
                              max_lanes=1)
    a, b = inputs(1001)
    pinned_a, pinned_b = runtime.pinned_empty(a.shape, F16), runtime.pinned_empty(b.shape, F32)
    pinned_a[:], pinned_b[:] = a, b
    staged_uploads = len(fake_cuda.upload_sources)
    outputs = engine.predict([pinned_a, pinned_b])
    assert_matches(outputs, pinned_a.astype(F32), pinned_b)
    uploads = fake_cuda.upload_sources[staged_uploads:]
    assert len(uploads) == 2 * trt.executions
    assert all(_within(ptr, pinned_a if i % 2 == 0 else pinned_b) for i, ptr in enumerate(uploads))
    assert sorted(uploads[::2]) == uploads[::2] and uploads[0] == pinned_a.ctypes.data
    assert closed_cleanly(engine, trt)


def test_page_locked_inputs_of_a_small_batch_skip_the_staging_copy(monkeypatch, fake_cuda, tmp_path):
    """A graph-replayed batch copies a page-locked input to the GPU from the caller's array, ahead of the graph
    (whose nodes hold fixed addresses), and stages the others; graphs are kept per set of such inputs, so the same
    shape from ordinary arrays still replays its own graph."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, max_lanes=1)
    a, b = inputs(10)
    pinned_b = runtime.pinned_empty(b.shape, F32)
    for call in range(3):
        pinned_b[:] = b + call        # new contents each call: nothing of an earlier call may be replayed
        before = len(fake_cuda.upload_sources)
        assert_matches(engine.predict([a, pinned_b]), a, b + call)
        uploads = fake_cuda.upload_sources[before:]
        # b straight from pinned_b; a from staging (queued by the first run and again by the capture, then in the
        # graph, which the simulation does not count as a new upload)
        assert [_within(ptr, pinned_b) for ptr in uploads] == ([True, False, False] if call == 0 else [True])
    assert fake_cuda.launches == 2   # the first call ran TensorRT and captured; the next two replayed
    assert_matches(engine.predict([a, b.astype(F32)]), a, b)    # the same shape staged: a graph of its own
    assert_matches(engine.predict([a, b.astype(F32)]), a, b)
    assert fake_cuda.launches == 3
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("why", ["float64, not the engine's float32", "not C-contiguous", "pageable"])
def test_other_inputs_go_through_staging(monkeypatch, fake_cuda, tmp_path, why):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=0, stream_chunk_bytes=600,
                              max_lanes=1)
    a, b = inputs(300)
    if why.startswith("float64"):
        given = runtime.pinned_empty(b.shape, np.float64)
    elif why == "not C-contiguous":
        given = runtime.pinned_empty((300, 4), F32)[:, :2]
    else:
        given = np.empty(b.shape, F32)
    given[:] = b
    assert_matches(engine.predict([a, given]), a, given)
    assert not any(_within(ptr, given.base if given.base is not None else given) for ptr in fake_cuda.upload_sources)
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("batch", [5, 1000])
def test_device_time_is_kept_only_when_asked(monkeypatch, fake_cuda, tmp_path, batch):
    """For a graph replay, a first run and a streamed batch; events with timing are made only when asked."""
    for time_device in (False, True):
        engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, stream_chunk_bytes=600, max_lanes=1,
                                  time_device=time_device)
        for _ in range(2):
            engine.predict(list(inputs(batch)))
            assert engine.last_device_ms == (0.25 if time_device else None)
        assert closed_cleanly(engine, trt)


def test_a_failed_run_raises_and_the_lane_stays_usable(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, fail_execute=True, max_lanes=1)
    with pytest.raises(RuntimeError, match="TensorRT failed to run the engine"):
        engine.predict(list(inputs(3)))
    with pytest.raises(RuntimeError, match="TensorRT failed to run the engine"):
        engine.predict(list(inputs(500)))
    trt.fail_execute = False
    trt.errors.clear()
    a, b = inputs(3)
    assert_matches(engine.predict([a, b]), a, b)
    assert closed_cleanly(engine, trt)
