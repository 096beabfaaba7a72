"""trtkit build, end to end: real CLI, real engine, stand-in image (CPU toolchain)."""
import importlib.metadata
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import STANDIN_ARGS

from trtkit_steps.storage import load_arrays

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

ORIGIN_NAMES = {"input": ("lstm_1_input", "lstm_1_input:0", "import/lstm_1_input:0"),
                "output": ("dense_3", "dense_3/Sigmoid:0")}
EXPECTED_IO = {
    "origin_lstm.h5": (["lstm_1_input"], ["dense_3"]),
    "cnn_bn.h5": (["image"], ["probs"]),
    "two_io.h5": (["features", "sequence"], ["score", "logits"]),
    "keras3_mlp.keras": (["x"], ["out"]),
    "origin_savedmodel": (["lstm_1_input"], ["dense_3"]),
}
ARTIFACT = {"onnx": ("model.onnx", "onnx"), "frozen": ("model.pb", "frozen")}
REFERENCE = ["reference-inputs.npz", "reference-outputs.npz"]     # what a later build verifies against
STEPS = {"onnx": ["inspect", "freeze", "reference", "export", "verify-onnx"],
         "frozen": ["inspect", "freeze", "reference", "verify-frozen"]}


@pytest.mark.parametrize("target", ["onnx", "frozen"])
@pytest.mark.parametrize("model", sorted(EXPECTED_IO))
def test_build_verifies_against_keras(trtkit, models, tmp_path, model, target):
    out = tmp_path / "out"
    result = trtkit("build", models / model, *STANDIN_ARGS, "--target", target, "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(result.stdout)

    inputs, outputs = EXPECTED_IO[model]
    assert [i["name"] for i in manifest["names"]["inputs"]] == inputs
    assert [o["name"] for o in manifest["names"]["outputs"]] == outputs
    assert [i["frozen"] for i in manifest["names"]["inputs"]] == [f"{n}:0" for n in inputs]

    name, kind = ARTIFACT[target]
    assert [a["name"] for a in manifest["artifacts"]] == [name] + REFERENCE
    assert [a["kind"] for a in manifest["artifacts"]] == [kind, "reference-inputs", "reference-outputs"]
    assert sorted(os.listdir(out)) == sorted([name, *REFERENCE, "trtkit.json", "report.md", "report.html",
                                              "reproduce.sh"])
    assert json.loads((out / "trtkit.json").read_text())["artifacts"] == manifest["artifacts"]
    [check] = manifest["verification"]
    assert check["artifact"] == name and check["passed"] and check["max_abs_err"] <= 1e-5
    assert [s["step"] for s in manifest["steps"]] == STEPS[target]
    assert all(s["ok"] for s in manifest["steps"])
    for path in out.iterdir():
        assert path.stat().st_uid == os.getuid() and path.stat().st_gid == os.getgid()


def test_large_outputs_are_verified_relative_to_their_size(trtkit, models, tmp_path):
    """A model of prices near 2.4e5: float32 keeps about two decimals there, so ONNX Runtime's export differs from
    Keras by about 1e-2, which an absolute 1e-5 refused (exit 18). The default tolerance is 1e-5 of the largest
    output; --atol stays absolute."""
    result = trtkit("build", models / "price_regression.h5", *STANDIN_ARGS, "--target", "onnx", "--out",
                    tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    [check] = json.loads(result.stdout)["verification"]
    largest = float(np.abs(load_arrays(str(tmp_path / "out" / "reference-outputs.npz"))["price"]).max())
    assert largest > 2e5 and abs(check["atol"] - 1e-5 * largest) < 1e-9 * largest
    assert 1e-5 < check["max_abs_err"] <= check["atol"], "an error an absolute 1e-5 would have refused"
    strict = trtkit("build", models / "price_regression.h5", *STANDIN_ARGS, "--target", "onnx", "--atol", "1e-5",
                    "--out", tmp_path / "strict")
    assert strict.returncode == 18 and "above the tolerance 1e-05" in strict.stderr
    assert not (tmp_path / "strict").exists()


def test_unroll_lstm_exports_the_steps_and_verifies_them_against_keras(trtkit, models, tmp_path):
    """--unroll-lstm: no LSTM node in the export, the record says which LSTM was unrolled, and the unrolled model
    still matches Keras (ONNX Runtime runs it in the verify-onnx step). An engine-only option is noted, not
    refused (project matrices cross targets with them)."""
    out = tmp_path / "out"
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--target", "onnx", "--unroll-lstm",
                    "--exact-batches", "1,64", "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning: --exact-batches shapes only what TensorRT builds: this onnx build does not use it" \
        in result.stderr
    manifest = json.loads(result.stdout)
    record = manifest["artifacts"][0]
    assert "LSTM" not in record["ops"] and record["ops"]["MatMul"] > 11    # one per step, and the dense layers
    assert [(lstm["unrolled"], lstm["kept_because"]) for lstm in record["lstms"]] == [(True, None)]
    [check] = manifest["verification"]
    assert check["passed"] and check["max_abs_err"] <= 1e-5
    assert manifest["options"]["unroll_lstm"] is True and "--unroll-lstm" in (out / "reproduce.sh").read_text()


def test_origin_build_records_everything(trtkit, models, tmp_path):
    """The origin post's model: names it had to guess, versions, digests, timings, a readable report."""
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "trtkit.json").read_text())

    [inp], [outp] = manifest["names"]["inputs"], manifest["names"]["outputs"]
    assert (inp["name"], inp["frozen"], inp["imported"]) == ORIGIN_NAMES["input"]
    assert (outp["name"], outp["keras_tensor"]) == ORIGIN_NAMES["output"]
    assert inp["shape"] == [None, 11, 192] and inp["dtype"] == "float32"
    assert manifest["target"] == {"chosen": "onnx",
                                  "reason": "default: --gpus none was given, so no TensorRT engine can be built here"}
    for package in ("python", "tensorflow", "keras", "onnx", "tf2onnx", "onnxruntime", "numpy"):
        assert manifest["versions"][package], package
    # The Polygraphy trtkit pins reached the box beside its scripts, whatever the image has.
    assert manifest["versions"]["polygraphy"] == importlib.metadata.version("polygraphy")
    assert manifest["image"]["reference"] == "trtkit/standin:19.07-py3"
    assert manifest["image"]["id"].startswith("sha256:")
    assert len(manifest["model"]["sha256"]) == 64 and manifest["model"]["params"] == 68417
    assert manifest["artifacts"][0]["sha256"] and manifest["artifacts"][0]["bytes"] > 100_000
    assert manifest["artifacts"][0]["ops"]["LSTM"] == 1, "tf2onnx must emit a real LSTM op, not a Loop"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "lstm_1_input:0" in report and "dense_3/Sigmoid:0" in report and "import/lstm_1_input:0" in report
    assert "verify-onnx" in result.stdout and "dense_3/Sigmoid:0" in result.stdout


def test_sample_data_is_used_for_verification(trtkit, models, tmp_path):
    data = tmp_path / "sample.npz"
    np.savez(data, lstm_1_input=np.full((3, 11, 192), 0.5, np.float32))
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--sample-data", data, "--out", tmp_path / "o",
                    "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["options"]["sample_data"] == str(data)


def test_sample_data_missing_an_input_fails_cleanly(trtkit, models, tmp_path):
    data = tmp_path / "wrong.npz"
    np.savez(data, not_an_input=np.zeros((2, 16), np.float32))
    out = tmp_path / "o"
    result = trtkit("build", models / "two_io.h5", *STANDIN_ARGS, "--sample-data", data, "--out", out)
    assert result.returncode == 17
    assert "--sample-data lacks input(s) ['features', 'sequence']" in result.stderr
    assert not out.exists()


def test_rebuild_replaces_previous_output_atomically(trtkit, models, tmp_path):
    out = tmp_path / "out"
    model = models / "keras3_mlp.keras"
    assert trtkit("build", model, *STANDIN_ARGS, "--target", "frozen", "--out", out).returncode == 0
    assert (out / "model.pb").exists()
    assert trtkit("build", model, *STANDIN_ARGS, "--target", "onnx", "--out", out).returncode == 0
    assert sorted(os.listdir(out)) == ["model.onnx", *REFERENCE, "report.html", "report.md", "reproduce.sh",
                                       "trtkit.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no staging folders left beside --out"


def test_inspect_prints_the_names_the_origin_post_guessed(trtkit, models):
    result = trtkit("inspect", models / "origin_lstm.h5", "--image", "trtkit/standin", "--tag", "19.07-py3", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    names = json.loads(result.stdout)
    [inp], [outp] = names["inputs"], names["outputs"]
    assert (inp["name"], inp["frozen"], inp["imported"]) == ORIGIN_NAMES["input"]
    assert (outp["name"], outp["keras_tensor"]) == ORIGIN_NAMES["output"]
    assert outp["imported"] == "import/" + outp["frozen"]
    assert names["params"] == 68417

    table = trtkit("inspect", models / "origin_lstm.h5", "--image", "trtkit/standin", "--tag", "19.07-py3")
    assert table.returncode == 0
    assert "dense_3/Sigmoid:0" in table.stdout and "import/lstm_1_input:0" in table.stdout


def test_build_with_bench_then_bench_the_output(trtkit, models, tmp_path):
    """--bench keeps the figures in the manifest and the report; `trtkit bench OUT` times the same artifacts."""
    out = tmp_path / "out"
    result = trtkit("build", models / "two_io.h5", *STANDIN_ARGS, "--out", out, "--bench", "--batch", "1,16",
                    "--iterations", "3", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(result.stdout)["bench"]
    assert bench["batches"] == [1, 16] and bench["device"].startswith("cpu: ")
    rows = {(r["batch"], r["framework"]): r for r in bench["rows"]}
    assert set(rows) == {(b, f) for b in (1, 16) for f in ("keras-call", "keras-predict", "onnxruntime")}
    for row in rows.values():
        assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"] and row["iterations"] == 3
        assert row["device"] == bench["device"]          # Keras (CPU TensorFlow) and ONNX Runtime: this CPU
    assert rows[(16, "onnxruntime")]["max_abs_err"] <= 1e-5
    assert rows[(16, "keras-predict")]["speedup_vs_predict"] == 1.0
    assert rows[(16, "onnxruntime")]["speedup_vs_predict"] > 0   # one device: ratios taken
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "## Benchmark (cpu: " in report and "![latency per batch size](bench.png)" in report
    assert "<img src='bench.png'" in (out / "report.html").read_text()

    again = trtkit("bench", out, "--image", "trtkit/standin", "--tag", "19.07-py3", "--gpus", "none",
                   "--batch", "4", "--iterations", "2", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert {r["framework"] for r in json.loads(again.stdout)["rows"]} == {"keras-call", "keras-predict", "onnxruntime"}


@pytest.mark.parametrize("model, target, artifact", [("origin_lstm.h5", "onnx", "model.onnx"),
                                                     ("two_io.h5", "onnx", "model.onnx"),
                                                     ("origin_lstm.h5", "frozen", "model.pb")])
def test_rebuilds_are_byte_identical(trtkit, models, tmp_path, model, target, artifact):
    """The same model gives the same bytes (tf2onnx's generated names and protobuf map order vary by run)."""
    contents = set()
    for run in ("first", "second"):      # --force: built again, not reused from the build cache
        result = trtkit("build", models / model, *STANDIN_ARGS, "--target", target, "--out", tmp_path / run,
                        "--force", "--json")
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout)["reused_from"] is None
        contents.add((tmp_path / run / artifact).read_bytes())
    assert len(contents) == 1


def test_a_finished_build_is_reused_and_any_change_builds_again(trtkit, models, tmp_path):
    args = ["build", models / "keras3_mlp.keras", *STANDIN_ARGS, "--target", "onnx", "--json"]
    first = json.loads(trtkit(*args, "--out", tmp_path / "first", "--force").stdout)
    again = trtkit(*args, "--out", tmp_path / "again")
    assert again.returncode == 0 and "reusing the finished build" in again.stderr, again.stderr[-1500:]
    reused = json.loads(again.stdout)
    assert reused["reused_from"] == first["created"] and reused["build_key"] == first["build_key"]
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (tmp_path / "first" / "model.onnx").read_bytes()
    assert "reusing" not in trtkit(*args, "--out", tmp_path / "seed", "--seed", "7").stderr    # another key
    bench = json.loads(trtkit(*args, "--out", tmp_path / "b", "--bench", "--batch", "1", "--iterations", "2").stdout)
    assert bench["build_key"] is None and bench["reused_from"] is None      # timings are measured, never reused


def test_reproduce_sh_rebuilds_the_same_bytes_and_checks_the_image(trtkit, trtkit_env, models, tmp_path):
    out = tmp_path / "out"
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--shapes", "lstm_1_input:1/8/64",
                    "--memory", "6g", "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    script = (out / "reproduce.sh").read_text()
    image_id = json.loads(result.stdout)["image"]["id"]
    assert f"expected={image_id}" in script and "--target onnx" in script and "--memory 6144M" in script
    assert "--shapes lstm_1_input:1/8/64" in script and '"trust_model": false' in script
    env = dict(trtkit_env, PATH=f"{os.path.dirname(sys.executable)}:{trtkit_env['PATH']}")
    again = subprocess.run(["sh", str(out / "reproduce.sh"), str(tmp_path / "again")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
    # Another image under the same name is refused before anything runs.
    tampered = script.replace(f"expected={image_id}", "expected=sha256:" + "0" * 64)
    (tmp_path / "tampered.sh").write_text(tampered)
    refused = subprocess.run(["sh", str(tmp_path / "tampered.sh"), str(tmp_path / "never")], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "not the image this build used" in refused.stderr
    assert not (tmp_path / "never").exists()

