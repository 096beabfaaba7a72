"""trtkit.runtime.trt on the simulation (tests/runtime_sim.py): contexts, profiles and TensorRT's log."""
import warnings

import pytest
from runtime_sim import FakeContext, FakeRuntime, FakeTensorRT, assert_matches, closed_cleanly, fake_engine, inputs

from trtkit.runtime import trt as trt_module


def test_the_simulation_enforces_one_context_per_profile(fake_cuda):
    """As TensorRT 8.6 did on an H200: a second context cannot select profile 0 while the first lives."""
    trt = FakeTensorRT(fake_cuda, profiles=2)
    engine = FakeRuntime(trt).deserialize_cuda_engine(b"")
    first, second = engine.create_execution_context_without_device_memory(), \
        engine.create_execution_context_without_device_memory()
    assert first.profile == 0 and second.profile == -1
    assert not second.set_optimization_profile_async(0, 0)
    assert trt.errors == ["Profile 0 has been chosen by another IExecutionContext"]
    assert second.set_optimization_profile_async(1, 0)
    del first
    assert second.set_optimization_profile_async(0, 0)   # free once the first is gone


def test_an_engine_tensorrt_cannot_capture_costs_one_warning_of_trtkits_and_none_of_tensorrts_errors(
        monkeypatch, fake_cuda, tmp_path):
    """TensorRT 8.6 printed its Error Code 3 for the first call of each shape on such an engine; now one line of
    trtkit's says graphs are off, for the engine (both profiles' lanes), and TensorRT's other messages still print."""
    monkeypatch.setattr(trt_module, "_loggers", [])   # a logger made on this simulation's TensorRT
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2, refuse_capture=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in (3, 4, 5, 100, 101):                 # first calls of five shapes, on two lanes
            a, b = inputs(batch)
            assert_matches(engine.predict([a, b]), a, b)
    said = [str(w.message) for w in caught]
    assert said == ["trtkit.runtime: CUDA graphs are off for this engine (TensorRT cannot capture this engine's run: "
                    "it is not stream capturable); small batches run without them"], said
    assert trt.printed == [] and fake_cuda.launches == 0
    trt.logger.log(trt.Logger.WARNING, "a warning of TensorRT's, not under capture")
    assert trt.printed == [(trt.Logger.WARNING, "a warning of TensorRT's, not under capture")]
    assert trt.errors == ["enqueueV3 failed"]           # one refused capture: the second lane knew before
    trt.errors.clear()
    assert closed_cleanly(engine, trt)


def test_what_tensorrt_logs_during_a_capture_that_works_is_printed_after_it(monkeypatch, fake_cuda, tmp_path):
    monkeypatch.setattr(trt_module, "_loggers", [])
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path)
    execute = FakeContext.execute_async_v3

    def warning_while_capturing(context, handle):
        if trt.cuda.streams[handle].recording is not None:
            trt.logger.log(trt.Logger.WARNING, "said while capturing")
            assert trt.printed == []                      # held while the capture runs
        return execute(context, handle)

    monkeypatch.setattr(FakeContext, "execute_async_v3", warning_while_capturing)
    a, b = inputs(3)
    assert_matches(engine.predict([a, b]), a, b)
    assert trt.printed == [(trt.Logger.WARNING, "said while capturing")]
    assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 1 and closed_cleanly(engine, trt)


def test_a_profile_tensorrt_refuses_raises_instead_of_running(monkeypatch, fake_cuda, tmp_path):
    """Another context (not the runtime's) holds profile 0: the lane cannot be made, and predict() says why."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path)
    squatter = engine._loaded.engine.create_execution_context_without_device_memory()
    with pytest.raises(RuntimeError, match="TensorRT refused optimization profile 0 to a new execution context"):
        engine.predict(list(inputs(3)))
    assert trt.errors == ["Profile 0 has been chosen by another IExecutionContext"] and trt.executions == 0
    del squatter
    trt.errors.clear()
    a, b = inputs(3)
    assert_matches(engine.predict([a, b]), a, b)      # the slot was given back: a lane is made now
    assert closed_cleanly(engine, trt)


def test_the_runtime_never_asks_for_a_second_context_on_a_profile(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path)
    engine.predict(list(inputs(3)))
    with pytest.raises(RuntimeError, match="already has 1 execution context"):
        engine._loaded.new_context(fake_cuda.DeviceMemory(1024), 0, fake_cuda.Stream(), 1)
    assert trt.errors == [] and len(trt.contexts) == 1   # refused before TensorRT was asked
    assert closed_cleanly(engine, trt)


def test_close_drops_contexts_before_the_engine_and_the_engine_before_its_runtime(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2)
    for batch in (3, 100, 1000):
        engine.predict(list(inputs(batch)))
    assert len(trt.live_contexts()) == 2
    assert closed_cleanly(engine, trt)
    engine.close()                                     # twice is harmless
