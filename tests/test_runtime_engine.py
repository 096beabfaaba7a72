"""trtkit.runtime.engine on the simulation (tests/runtime_sim.py): loading, threads, close, pinned_copy."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from runtime_sim import F16, F32, H100, _within, assert_matches, closed_cleanly, fake_engine, inputs

from trtkit.runtime import IncompatibleEngine
from trtkit.runtime.lane import _Lane


@pytest.mark.parametrize("manifest", [
    "{not json",
    json.dumps({"artifacts": [{"name": "two.plan", "kind": "engine"}], "engine": {"tensorrt": "8.6.1"}}),
    json.dumps({"artifacts": [{"name": "two.plan", "kind": "engine"}],
                "engine": {"tensorrt": "8.6.1", "gpu": H100[0], "compute_capability": H100[1]},
                "names": {"inputs": [{"name": "lstm_1_input"}]}})])
def test_check_false_loads_by_the_engines_own_names_where_the_manifest_cannot_serve(monkeypatch, fake_cuda, tmp_path,
                                                                                   manifest):
    """Not JSON, no GPU recorded, names the engine lacks: refused when checked, a warning with check=False."""
    (tmp_path / "trtkit.json").write_text(manifest)
    with pytest.raises(IncompatibleEngine):
        fake_engine(monkeypatch, fake_cuda, tmp_path)
    with pytest.warns(RuntimeWarning, match="check=False"):
        engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, check=False)
    a, b = inputs(5)
    assert_matches(engine.predict([a, b]), a, b)
    assert closed_cleanly(engine, trt)


def test_close_from_two_threads_at_once_frees_everything_once(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2)
    engine.predict(list(inputs(5)))
    engine.predict(list(inputs(100)))       # the second profile's lane
    close_lane = _Lane.close

    def slow_close(lane):
        time.sleep(0.1)
        close_lane(lane)

    monkeypatch.setattr(_Lane, "close", slow_close)
    with ThreadPoolExecutor(2) as threads:
        for done in [threads.submit(engine.close) for _ in range(2)]:
            done.result()
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("batch", [10, 300])
def test_pinned_copy_makes_inputs_of_the_engines_types_that_go_straight_to_the_gpu(monkeypatch, fake_cuda, tmp_path,
                                                                                  batch):
    """float32 for the engine's float16 input a, float64 for its float32 input b: the copies are float16 and
    float32, page-locked, by engine name, and predict() uploads each from where it is (a graph run and a
    streamed one)."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=40 * 14, stream_chunk_bytes=600,
                              max_lanes=1)
    a, b = inputs(batch)
    pinned = engine.pinned_copy({"b": b, "a": a})
    assert {name: x.dtype for name, x in pinned.items()} == {"a": F16, "b": F32}
    assert all(fake_cuda.is_page_locked(x.ctypes.data, x.nbytes) for x in pinned.values())
    np.testing.assert_array_equal(pinned["a"], a.astype(F16))
    before = len(fake_cuda.upload_sources)
    assert_matches(engine.predict(pinned), a, b)
    uploads = fake_cuda.upload_sources[before:]
    assert all(any(_within(ptr, x) for ptr in uploads) for x in pinned.values())
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("version", ["8.6.1", "10.0.1"])
def test_many_threads_share_the_one_lane_of_a_single_profile(monkeypatch, fake_cuda, tmp_path, version):
    """max_lanes=4, but the engine has one profile: one context, and the calls take turns on it."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, version=version, stream_chunk_bytes=200, max_lanes=4)

    def call(seed):
        a, b = inputs(1 + seed * 37 % 300, seed)
        assert_matches(engine.predict([a, b]), a, b)

    with ThreadPoolExecutor(6) as threads:
        list(threads.map(call, range(24)))
    assert len(trt.contexts) == 1
    assert closed_cleanly(engine, trt)
    with pytest.raises(RuntimeError, match="closed"):
        engine.predict(list(inputs(1)))


def test_two_profiles_get_a_lane_each(monkeypatch, fake_cuda, tmp_path):
    """Batches of up to 64 rows take profile 0's lane, of 65 to 256 profile 1's: two contexts, one a profile, even
    when the lane of profile 1 is made first (its new context is given profile 0, and gives it up)."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2, max_lanes=4)
    a, b = inputs(100)
    assert_matches(engine.predict([a, b]), a, b)

    def call(seed):
        a, b = inputs((3, 100, 64, 200)[seed % 4], seed)
        assert_matches(engine.predict([a, b]), a, b)

    with ThreadPoolExecutor(6) as threads:
        list(threads.map(call, range(24)))
    assert len(trt.contexts) == 2
    assert closed_cleanly(engine, trt)
