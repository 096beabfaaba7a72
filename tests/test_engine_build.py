"""`trtkit build --target engine` end to end: needs a GPU host, so it skips with a reason elsewhere.

Set TRTKIT_TEST_TRT_IMAGE to a TensorRT image (e.g. nvcr.io/nvidia/tensorrt:24.05-py3) on a
host whose Docker engine has the NVIDIA runtime. CI has neither: there the engine code is
proven on real TensorRT by benchmarks/gpu_proof (docs/gpu-proof.md).
"""
import json
import os

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture
def trt_image(docker_client):
    image = os.environ.get("TRTKIT_TEST_TRT_IMAGE")
    if not image:
        pytest.skip("TRTKIT_TEST_TRT_IMAGE is not set: no TensorRT image to build engines with here")
    if "nvidia" not in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this Docker engine has no NVIDIA runtime: no GPU for TensorRT here")
    return image.rsplit(":", 1)


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-4), ("fp16", 1e-2)])
def test_engine_of_the_origin_model(trt_image, trtkit, models, tmp_path, precision, atol):
    image, tag = trt_image
    result = trtkit("build", models / "origin_lstm.h5", "--image", image, "--tag", tag, "--gpus", "all",
                    "--target", "engine", "--precision", precision, "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(result.stdout)
    assert {a["name"] for a in manifest["artifacts"]} >= {"model.onnx", "model.plan"}
    engine_check = next(v for v in manifest["verification"] if v["artifact"] == "model.plan")
    assert engine_check["passed"] and engine_check["max_abs_err"] <= atol
    assert manifest["engine"]["precision"] == precision and manifest["engine"]["gpu"]
