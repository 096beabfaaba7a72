"""Pure logic of the bench step: settings, guards, rows, worker failures, chart fallback."""
import json
import sys
from pathlib import Path

import pytest

from trtkit_steps import bench, bench_worker
from trtkit_steps.chart import draw_latency_chart
from trtkit_steps.errors import StepError, first_line

ORIGIN_INPUTS = [{"name": "lstm_1_input", "shape": [None, 11, 192], "dtype": "float32"}]


def timed_row(framework, median, mode="end-to-end", batch=64):
    return bench.timing_row(framework, mode, batch, [median] * 3, 0.0, 5)


# --- settings -----------------------------------------------------------------

def test_batches_keep_order_and_drop_repeats():
    assert bench.bench_settings({"batches": [1024, 1, 64, 1]})["batches"] == [1024, 1, 64]


@pytest.mark.parametrize("value", [[], "", [0], [-1], [1.5], ["x"], [True], None, 64, "1,2", [2**31]])
def test_bad_batches_are_step_errors(value):
    with pytest.raises(StepError):
        bench.bench_settings({"batches": value})


def test_settings_default_when_bench_is_true_or_partial():
    assert bench.bench_settings(True) == {"batches": [1, 64, 1024], "iterations": 50, "warmup": 5}
    assert bench.bench_settings({"batches": [8], "warmup": 0}) == {"batches": [8], "iterations": 50, "warmup": 0}


@pytest.mark.parametrize("value", [{"iterations": 0}, {"warmup": -1}, {"iterations": 2.5}, [1, 64], "fast"])
def test_bad_settings_are_step_errors(value):
    with pytest.raises(StepError):
        bench.bench_settings(value)


def test_frameworks_follow_the_artifacts(tmp_path):
    (tmp_path / "artifacts").mkdir()
    everything = lambda module: True  # noqa: E731
    assert bench.available_frameworks(str(tmp_path), everything) == (["keras-call", "keras-predict"], [])
    (tmp_path / "artifacts" / "model.onnx").write_bytes(b"")
    (tmp_path / "artifacts" / "model.plan").write_bytes(b"")
    assert bench.available_frameworks(str(tmp_path), everything) == (
        ["keras-call", "keras-predict", "onnxruntime", "tensorrt", "trtkit-runtime"], [])


def test_frameworks_missing_from_the_image_are_named_not_failed(tmp_path):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model.plan").write_bytes(b"")
    found, missing = bench.available_frameworks(str(tmp_path), lambda module: module == "tensorrt")
    assert found == ["tensorrt", "trtkit-runtime"]
    assert missing == [{"framework": f, "reason": "tensorflow is not in this image"}
                       for f in ("keras-call", "keras-predict")]


# --- memory and time guards -----------------------------------------------------

def test_input_bytes_of_the_origin_batch():
    assert bench.input_bytes(ORIGIN_INPUTS, {}, 100000) == 100000 * 11 * 192 * 4


def test_input_bytes_need_shapes_for_unknown_dims():
    spec = [{"name": "seq", "shape": [None, None, 4], "dtype": "float16"}]
    with pytest.raises(StepError):
        bench.input_bytes(spec, {}, 2)
    assert bench.input_bytes(spec, {"seq": [[1, 1, 4], [1, 10, 4], [1, 20, 4]]}, 2) == 2 * 10 * 4 * 2


def test_input_bytes_do_not_overflow_on_absurd_shapes():
    spec = [{"name": "x", "shape": [None, 2**31 - 1, 2**31 - 1], "dtype": "float32"}]
    needed = bench.input_bytes(spec, {}, 2**31 - 1)
    assert needed == (2**31 - 1) ** 3 * 4 and bench.memory_skip_reason(needed, 16 * 10**9)


def test_mem_available_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24731708 kB\nMemAvailable:   16999688 kB\n")
    assert bench.mem_available_bytes(str(meminfo), ()) == 16999688 * 1024
    meminfo.write_text("MemTotal:       24731708 kB\n")
    assert bench.mem_available_bytes(str(meminfo), ()) is None
    assert bench.mem_available_bytes(str(tmp_path / "missing"), ()) is None


def test_mem_available_is_capped_by_the_container_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:   16999688 kB\n")
    (tmp_path / "v2").write_text("2147483648\n")
    (tmp_path / "unlimited").write_text("max\n")
    assert bench.mem_available_bytes(str(meminfo), [str(tmp_path / "v2")]) == 2 << 30
    assert bench.mem_available_bytes(str(meminfo), [str(tmp_path / "unlimited")]) == 16999688 * 1024


def test_memory_guard_skips_inputs_above_a_sixteenth_of_free_memory():
    gb = 10 ** 9
    assert bench.memory_skip_reason(gb, 16 * gb) is None
    assert bench.memory_skip_reason(10 ** 12, None) is None
    reason = bench.memory_skip_reason(2 * gb, 16 * gb)
    assert "2.00 GB" in reason and "16.00 GB" in reason


@pytest.mark.parametrize("first_call_s, expected", [
    (0.001, (4, 50)),   # everything fits
    (1.0, (4, 50)),     # 60 calls fit: 50 timed, then the 4 further warmups
    (1.15, (2, 50)),    # 52 fit: warmup gets the 2 left
    (15.0, (0, 4)),     # the origin's 100000-row predict
    (100.0, (0, 1)),    # one timed call, however slow
    (0.0, (4, 50)),     # a clock too coarse to tell
])
def test_time_budget(first_call_s, expected):
    assert bench_worker.fit_budget(first_call_s, 5, 50, 60.0) == expected


def test_time_budget_without_warmup():
    assert bench_worker.fit_budget(0.001, 0, 10, 60.0) == (0, 10)


# --- rows -------------------------------------------------------------------------

def test_timing_row_has_latency_stats_and_counts():
    row = bench.timing_row("onnxruntime", "end-to-end", 64, [1.0, 2.0, 3.0], 1e-7, 5)
    assert row["framework"] == "onnxruntime" and row["batch"] == 64 and row["max_abs_err"] == 1e-7
    assert row["median_ms"] == 2.0 and row["iterations"] == 3 and row["warmup"] == 5
    assert row["throughput_per_s"] == pytest.approx(32000.0)


def test_speedup_is_predict_median_over_row_median():
    rows = [timed_row("keras-call", 10.0), timed_row("keras-predict", 50.0), timed_row("onnxruntime", 2.0),
            bench.error_row("tensorrt", "on-device", 64, "boom")]
    filled = bench.fill_speedups(rows)
    assert [r["speedup_vs_predict"] for r in filled] == [5.0, 1.0, 25.0, None]
    assert "speedup_vs_predict" not in rows[0]


def test_no_speedups_across_devices():
    """A GPU's time over a CPU's is no speed-up: rows of another device than Keras predict get None."""
    cpu, gpu = "cpu: AMD EPYC", "gpu: NVIDIA H100 80GB HBM3"
    rows = [dict(timed_row("keras-predict", 50.0), device=cpu), dict(timed_row("onnxruntime", 2.0), device=cpu),
            dict(timed_row("tensorrt", 0.5), device=gpu), dict(timed_row("trtkit-runtime", 0.4), device=gpu)]
    assert [r["speedup_vs_predict"] for r in bench.fill_speedups(rows)] == [1.0, 25.0, None, None]
    on_gpu = [dict(row, device=gpu) for row in rows]
    assert [r["speedup_vs_predict"] for r in bench.fill_speedups(on_gpu)] == [1.0, 25.0, 100.0, 125.0]


def test_no_speedups_without_a_predict_median():
    rows = [timed_row("keras-call", 10.0), bench.error_row("keras-predict", "end-to-end", 64, "no predict()")]
    assert [r["speedup_vs_predict"] for r in bench.fill_speedups(rows)] == [None, None]


def test_killed_worker_leaves_error_rows_for_unreported_modes():
    reported = [timed_row("tensorrt", 1.0, mode="on-device")]
    rows = bench.complete_rows(reported, "tensorrt", 64, -9, "")
    assert rows[0] is reported[0]
    assert rows[1] == {"framework": "tensorrt", "mode": "end-to-end", "batch": 64, "error": "killed by signal 9"}


def test_the_runtime_is_timed_from_the_bench_arrays_and_from_pinned_ones():
    """A worker killed before its pinned-input row leaves an error row there, as for any mode."""
    reported = [timed_row("trtkit-runtime", 0.4)]
    rows = bench.complete_rows(reported, "trtkit-runtime", 64, -9, "")
    assert [r["mode"] for r in rows] == ["end-to-end", "pinned-input"] and rows[1]["error"] == "killed by signal 9"


def test_worker_exit_code_and_last_line():
    assert bench.worker_failure(1, "MemoryError") == "worker exited with code 1: MemoryError"
    assert bench.worker_failure(3, "") == "worker exited with code 3"
    assert bench.complete_rows([timed_row("onnxruntime", 1.0)], "onnxruntime", 64, 0, "") == [
        timed_row("onnxruntime", 1.0)]


def test_first_line_of_an_error():
    assert first_line(ValueError("first\n  second")) == "ValueError: first"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(MemoryError()) == "MemoryError"
    assert first_line(StepError("a SavedModel has no Keras predict()")) == "a SavedModel has no Keras predict()"
    assert len(first_line(RuntimeError("x" * 1000))) == 300


def test_events_and_log_lines():
    assert bench.parse_event('::trtkit::{"event": "bench_row", "batch": 1}\n') == {"event": "bench_row", "batch": 1}
    assert bench.parse_event("2024 some TensorFlow log\n") is None
    assert bench.parse_event("::trtkit::{not json\n") is None


def test_cpu_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    assert bench.cpu_name(str(cpuinfo)) == "Intel(R) Xeon(R) Processor"
    assert bench.cpu_name(str(tmp_path / "missing"))


def test_worker_failure_becomes_a_row_not_a_crash(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"model": "m.h5", "model_format": "h5", "bench": {"batches": [8]}}))
    rows, gpu = bench.spawn_worker(str(plan), "no-such-framework", 8)
    assert gpu is None
    assert rows == [{"framework": "no-such-framework", "mode": "end-to-end", "batch": 8,
                     "error": "unknown bench framework 'no-such-framework'", "device": "unknown"}]
    assert "bench_row" in capsys.readouterr().out  # relayed to the host


# --- chart --------------------------------------------------------------------------

def test_no_chart_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert draw_latency_chart([timed_row("keras-predict", 5.0)], "cpu: x", str(tmp_path / "b.png")) is None


def test_no_chart_without_timed_rows(tmp_path):
    rows = [bench.error_row("onnxruntime", "end-to-end", 1, "missing")]
    assert draw_latency_chart(rows, "cpu: x", str(tmp_path / "b.png")) is None


def test_chart_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [timed_row("keras-predict", 50.0, batch=b) for b in (1, 64)] + [
        timed_row("tensorrt", 0.1, mode="on-device", batch=1), timed_row("tensorrt", 0.3, batch=1)]
    path = str(tmp_path / "bench.png")
    assert draw_latency_chart(rows, "gpu: H100", path) == path
    assert Path(path).stat().st_size > 0


def test_the_box_gets_trtkit_runtime_as_a_package_the_bench_imports(tmp_path):
    """What Inputs.scripts() packs: the package trtkit.runtime as trtkit_runtime, importable without trtkit."""
    import subprocess
    import sys
    import tarfile

    import trtkit.runtime
    from trtkit.transfer import Inputs
    inputs = Inputs(tmp_path)
    inputs.scripts()
    with tarfile.open(fileobj=inputs.finish()) as tar:
        tar.extractall(tmp_path / "root", filter="data")
    scripts = tmp_path / "root" / "scripts"
    shipped = sorted(p.name for p in (scripts / "trtkit_runtime").iterdir())
    assert shipped == sorted(p.name for p in Path(trtkit.runtime.__file__).parent.glob("*.py")), shipped
    code = "from trtkit_runtime import Engine; import polygraphy; print(Engine.__name__)"
    ran = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(scripts)!r}); {code}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0 and ran.stdout.strip() == "Engine", ran.stderr
