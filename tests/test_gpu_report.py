"""benchmarks/gpu_proof/report.py's zoo-bench and precision tables, from files as run.sh writes them (pure logic)."""
import json
import re

from gpu_proof import report


def _bench(device, rows):
    return json.dumps({"device": device, "rows": rows})


def test_zoo_bench_puts_keras_beside_the_engine_each_with_its_device(tmp_path):
    engine = [{"batch": 1, "framework": "tensorrt", "mode": "on-device", "median_ms": 0.1},
              {"batch": 1, "framework": "trtkit-runtime", "mode": "end-to-end", "median_ms": 0.5},
              {"batch": 1, "framework": "tensorrt", "mode": "end-to-end", "median_ms": 9.0},
              {"batch": 64, "framework": "trtkit-runtime", "mode": "end-to-end", "median_ms": 2.0}]
    (tmp_path / "zoo-bench-vit.keras.json").write_text(_bench("gpu: NVIDIA H100", engine))
    (tmp_path / "keras3-vit.keras.jsonl").write_text("\n".join(json.dumps(line) for line in [
        {"gpu": "NVIDIA H100", "keras": "3.15.1", "keras_backend": "torch"},
        {"batch": 1, "keras-predict": {"end_to_end_ms": 40.0}, "keras-call": {"end_to_end_ms": 5.0}}]))
    (tmp_path / "zoo-bench-gru.h5.json").write_text(_bench("gpu: NVIDIA H100", engine[:2]))
    (tmp_path / "zoo-bench-broken.keras.json").write_text("")
    (tmp_path / "zoo-bench-broken.keras.log").write_text("error: no engine | here\n")
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in report.zoo_bench_lines(tmp_path)[2:]
            if line]
    assert rows[0][0] == "broken.keras" and "error: no engine \\| here" in rows[0][2]
    assert rows[1][1:5] == ["1", "gpu: NVIDIA H100", "0.1", "0.5"] and rows[1][5:] == [""] * 4, \
        "no Keras rows: the engine alone"
    vit = rows[2:]
    assert [r[1] for r in vit] == ["1", "64"], "one row per batch"
    assert vit[0][4:] == ["0.5", "gpu: NVIDIA H100 (Keras 3.15.1, torch)", "40", "5", "10"], "trtkit.runtime's row"
    assert vit[1][3:] == ["", "2"] + [""] * 4, "a batch Keras did not run has no Keras cells"


def test_the_precision_table_gives_each_engines_size_beside_its_times(tmp_path):
    """An engine's size shows the types TensorRT chose (on the H100 a rewrite engine twice the flags engine's
    size was FP32 in effect); a build that failed has none."""
    (tmp_path / "proof.log").write_text("=== build-resnet-fp16-flags: exit 0\n=== build-resnet-fp16-rewrite: exit 17\n")
    (tmp_path / "build-resnet-fp16-flags.json").write_text(json.dumps({"engine": {
        "engine_bytes": 48698020, "layer_precisions": {"fp32": 2, "fp16": 70}}}))
    (tmp_path / "build-resnet-fp16-rewrite.log").write_text("error: no engine\n")
    (tmp_path / "runtime-resnet-fp16-flags.jsonl").write_text(json.dumps(
        {"batch": 1024, "device_ms": 0.5, "max_abs_err_vs_keras": 1e-3}))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in report.precision_lines(tmp_path)[2:] if line]
    assert rows[0] == ["resnet-fp16", "flags", "exit 0", "48.7", "70 fp16, 2 fp32", "", "", "0.5, 1.00e-03"]
    assert rows[1][:5] == ["resnet-fp16", "rewrite", "**exit 17**: error: no engine", "", ""]
