"""Two-stage builds on the real engine: export here, continue from the output folder or an ONNX file.

The engine itself needs a GPU (docs/gpu-proof.md builds it from these folders on one); here the
second stage is taken as far as a CPU engine allows, and every refusal is one line with its exit code.
"""
import json
import os
import subprocess

import numpy as np
import pytest
from conftest import STANDIN_ARGS

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]
REFERENCE = ("reference-inputs.npz", "reference-outputs.npz")


def npz(path):
    with np.load(path) as data:
        return {str(name): data[f"a{i}"] for i, name in enumerate(data["names"])}


def test_every_output_carries_its_reference(exported):
    inputs, outputs = npz(exported / REFERENCE[0]), npz(exported / REFERENCE[1])
    assert list(inputs) == ["lstm_1_input"] and inputs["lstm_1_input"].shape == (8, 11, 192)
    assert list(outputs) == ["dense_3"] and outputs["dense_3"].shape == (8, 1)


def test_an_earlier_output_builds_only_an_engine(trtkit, exported, tmp_path):
    """The default target of an earlier output is its engine, so the stand-in (no TensorRT) says what it needs,
    and never to fall back to --target onnx (test_targets.py covers the GPU check)."""
    out = tmp_path / "second"
    result = trtkit("build", exported, *STANDIN_ARGS, "--out", out)
    assert result.returncode == 19, result.stderr[-1500:]
    assert "this image has no TensorRT" in result.stderr and "--target onnx" not in result.stderr
    result = trtkit("build", exported, *STANDIN_ARGS, "--target", "onnx", "--out", out)
    assert result.returncode == 19 and "needs the Keras model: from an earlier trtkit output" in result.stderr
    result = trtkit("build", exported, *STANDIN_ARGS, "--sample-data", exported / REFERENCE[0], "--out", out)
    assert result.returncode == 19 and "--sample-data needs the Keras model" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "model.onnx").unlink() or (out / "model.onnx").symlink_to("/etc/passwd"),
     "is not a regular file"),
    (lambda out: (out / REFERENCE[1]).unlink(), "lacks reference-outputs.npz"),
    (lambda out: (out / "trtkit.json").write_text(json.dumps(
        dict(json.loads((out / "trtkit.json").read_text()), names={"inputs": "x"}))), "node names of the wrong shape"),
])
def test_a_damaged_earlier_output_is_refused_before_any_container(trtkit, exported, tmp_path, damage, message):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(exported), str(copy)], check=True)
    damage(copy)
    result = trtkit("build", copy, *STANDIN_ARGS, "--gpus", "all", "--out", tmp_path / "second")
    assert result.returncode == 11, result.stderr[-1500:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "second").exists()


def test_an_onnx_file_gets_its_reference_from_onnx_runtime(trtkit, exported, tmp_path):
    """The same seed makes the same inputs, so ONNX Runtime's reference matches the Keras one."""
    out = tmp_path / "from_onnx"
    result = trtkit("build", exported / "model.onnx", *STANDIN_ARGS, "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(result.stdout)
    assert manifest["target"]["chosen"] == "onnx" and manifest["model"]["format"] == "onnx"
    assert [i["name"] for i in manifest["names"]["inputs"]] == ["lstm_1_input"]
    assert manifest["names"]["inputs"][0]["shape"] == [None, 11, 192]
    assert (out / "model.onnx").read_bytes() == (exported / "model.onnx").read_bytes()   # the user's bytes
    np.testing.assert_array_equal(npz(out / REFERENCE[0])["lstm_1_input"], npz(exported / REFERENCE[0])["lstm_1_input"])
    keras, onnxruntime = npz(exported / REFERENCE[1])["dense_3"], npz(out / REFERENCE[1])["dense_3"]
    assert np.abs(keras - onnxruntime).max() < 1e-5
    for path in out.iterdir():
        assert path.stat().st_uid == os.getuid()


def test_an_onnx_file_that_is_not_valid_is_one_line(trtkit, tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07" + b"\xff" * 64)
    result = trtkit("build", tmp_path / "broken.onnx", *STANDIN_ARGS, "--out", tmp_path / "out")
    assert result.returncode == 11, result.stderr[-1500:]
    assert "broken.onnx is not a valid ONNX model" in result.stderr and not (tmp_path / "out").exists()
