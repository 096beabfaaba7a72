"""scripts/trtkit_steps/trt/runner.py: the benchmark's choice of profile."""
import sys

import pytest

from trtkit_steps.errors import StepError


def test_the_benchmark_runs_a_batch_on_the_profile_the_runtime_would(monkeypatch):
    """The runner asks trtkit.runtime's select_profile (shipped into the box as trtkit_runtime)."""
    import trtkit.runtime.shapes
    from trtkit_steps.trt import runner
    monkeypatch.setitem(sys.modules, "trtkit_runtime", trtkit.runtime)
    monkeypatch.setitem(sys.modules, "trtkit_runtime.shapes", trtkit.runtime.shapes)
    ranges = [(1, 100000), (1, 1), (64, 64)]

    class Engine:
        num_optimization_profiles = len(ranges)

        def get_tensor_profile_shape(self, name, profile):
            low, high = ranges[profile]
            return [(low, 3), (low, 3), (high, 3)]

    class Context:
        def set_optimization_profile_async(self, profile, stream):
            chosen.append(profile)
            return True

    class Stream:
        handle = 0

        def synchronize(self):
            pass

    chosen = []
    bench_runner = object.__new__(runner.EngineRunner)
    bench_runner.engine, bench_runner._context, bench_runner._stream = Engine(), Context(), Stream()
    bench_runner._named = True
    for batch in (1, 2, 64, 100000):
        bench_runner._select_profile({"x": (batch, 3)})
    assert chosen == [1, 0, 2, 0]
    with pytest.raises(StepError, match="fit none of the engine's optimization profiles"):
        bench_runner._select_profile({"x": (8, 4)})
