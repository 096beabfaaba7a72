"""benchmarks/runtime_check.py and runtime_goals.py on the simulation (tests/runtime_sim.py)."""
import functools
import json
from pathlib import Path

import numpy as np
import pytest
from runtime_sim import H100, FakeTensorRT, TwoHeadedModel, inputs, probe

from trtkit import runtime
from trtkit.runtime import Engine
from trtkit.runtime import engine as engine_module

REPO = Path(__file__).resolve().parents[1]


def save_arrays(path, arrays):
    """As a trtkit build keeps references: a0, a1... with their names in `names`."""
    np.savez(path, names=np.array(list(arrays)), **{"a%d" % i: v for i, v in enumerate(arrays.values())})


def run_check(monkeypatch, fake_cuda, tmp_path, capsys, **fake):
    import runtime_check  # benchmarks/ is on pytest's pythonpath
    trt = FakeTensorRT(fake_cuda, **fake)
    monkeypatch.setattr(engine_module, "_import_tensorrt", lambda: trt)
    monkeypatch.setattr(runtime, "Engine", functools.partial(Engine, _probe=probe("8.6.1")))
    monkeypatch.setattr(runtime_check, "TIME_BUDGET_S", 0.0)
    monkeypatch.setattr(runtime_check, "SWEEP_BUDGET_S", 0.0)
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.plan").write_bytes(b"plan")
    a, b = inputs(4)
    total, double = TwoHeadedModel.reference(a, b)
    save_arrays(out / "reference-inputs.npz", {"a": a, "b": b})
    save_arrays(out / "reference-outputs.npz", {"total": total, "double": double})
    rc = runtime_check.main([str(out), "1,3,40,200", "--sweep"])
    return rc, [json.loads(line) for line in capsys.readouterr().out.splitlines()], trt


def test_runtime_check_on_the_simulation(monkeypatch, fake_cuda, tmp_path, capsys):
    rc, lines, trt = run_check(monkeypatch, fake_cuda, tmp_path, capsys)
    assert rc == 0 and lines[0]["profiles"] == 1 and lines[0]["built"] is None
    assert [line["batch"] for line in lines[1:5]] == [1, 3, 40, 200]
    assert lines[4]["runs_as"] == "4 streamed chunks"
    assert all(line["max_abs_err_vs_keras"] < 1e-5 and line["replay_vs_first"] == 0 for line in lines[1:5])
    assert all(line["device_ms"] == 0.25 for line in lines[1:5])
    assert all(line["pinned_input_vs_first"] == 0 for line in lines[1:5])   # every batch, from a pinned input too
    assert lines[4]["device_ms_pinned_input"] == 0.25 and lines[4]["median_ms_pinned_input"] > 0
    assert lines[5] == {"replay_after_other_shapes_vs_first": {"1": 0.0, "3": 0.0, "40": 0.0, "200": 0.0}}
    sweep = [line["sweep"] for line in lines[6:]]
    assert [(s["fill_threads"], s["stream_chunk_mb"]) for s in sweep] == [
        (threads, mb) for threads in (4, 8, 16) for mb in (16, 32, 64)]
    assert all(s["batch"] == 200 and s["median_ms"] > 0 for s in sweep)
    assert trt.violations == [] and trt.errors == []


def test_runtime_check_prints_a_line_for_a_failure(monkeypatch, fake_cuda, tmp_path, capsys):
    rc, lines, trt = run_check(monkeypatch, fake_cuda, tmp_path, capsys, fail_execute=True)
    assert rc == 1
    assert lines[1] == {"batch": 1, "error": "RuntimeError: TensorRT failed to run the engine (its log above says why)"}
    assert [line["batch"] for line in lines[1:5] if "error" in line] == [1, 3, 40, 200]   # each, then on
    assert lines[5] == {"replay_after_other_shapes_vs_first": {}}


def _frameworks_lines(gpu, batches):
    torch_row = {"device_ms": 0.05, "end_to_end_ms": 0.07, "max_abs_err_vs_keras": 1e-5}
    return [{"gpu": gpu, "torch": "2.x", "keras": "3.x", "keras_backend": "torch"}] + [
        {"batch": b, "keras-predict": {"end_to_end_ms": 5.0 * b}, "torch-fp32": torch_row, "torch-fp16": torch_row}
        for b in batches]


def test_runtime_goals_divides_one_gpus_figures_only(monkeypatch, fake_cuda, tmp_path, capsys):
    """runtime_goals.py on runtime_check's real output (on the simulation) and frameworks.py-shaped lines."""
    rc, lines, _ = run_check(monkeypatch, fake_cuda, tmp_path, capsys)
    assert lines[1]["batch"] == 1
    # The simulation's host time varies with the machine: fixed here. 5 ms / 0.25 is 20x, 5 / 0.125 40x.
    lines[1]["median_ms"], lines[1]["median_ms_engine_types"], lines[1]["median_ms_pinned_input"] = 0.25, 0.5, 0.125
    runtime_lines = tmp_path / "runtime.jsonl"
    runtime_lines.write_text("\n".join(json.dumps(line) for line in lines))
    import runtime_goals  # benchmarks/ is on pytest's pythonpath
    frameworks = tmp_path / "frameworks.jsonl"
    frameworks.write_text("\n".join(json.dumps(line) for line in _frameworks_lines(H100[0], [1, 3, 40, 200])))
    assert runtime_goals.main([str(frameworks), f"sim={runtime_lines}"]) == 0
    table = capsys.readouterr().out
    # batch 1: GPU time 0.25 ms (the simulation's) against PyTorch's 0.05: not met; Keras 5 ms / runtime's median
    assert "| 1 | 0.25 | 0.05 | 0.05 | 0.20 | **not met** |" in table
    assert "| 1 | 5 | 0.25 (20.0x) | 0.5 (10.0x) | 0.125 (40.0x) | met from a page-locked copy |" in table
    assert "| 200 | 1000 |" in table and "| fill threads | chunk MB | median ms |" in table
    frameworks.write_text("\n".join(json.dumps(line) for line in _frameworks_lines("NVIDIA A100", [1])))
    with pytest.raises(SystemExit, match="not divided"):
        runtime_goals.main([str(frameworks), f"sim={runtime_lines}"])
