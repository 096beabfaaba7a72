"""trtkit.runtime.compat: where the engine was built, where it would run, and the checks before loading."""
import json
import sys

import pytest
from runtime_sim import H100, make_output, probe

from trtkit import runtime
from trtkit.runtime import Built, Engine, Host, IncompatibleEngine, compat


@pytest.mark.parametrize("version, release", [("8.6.1", (8, 6, 1)), ("8.6.1.6", (8, 6, 1)), ("8.6", (8, 6, 0)),
                                              ("10.0.0b6", (10, 0, 0)), ("10.16.0.72", (10, 16, 0))])
def test_tensorrt_release(version, release):
    assert runtime.tensorrt_release(version) == release


def built(tensorrt="8.6.1", gpu=H100[0], capability=H100[1]):
    return Built(tensorrt, gpu, capability, "/models/origin_lstm.h5", "nvcr.io/nvidia/tensorrt:23.10-py3")


def test_the_same_release_and_gpu_load_silently():
    assert runtime.compatibility(built("8.6.1"), Host("8.6.1.6", *H100)) is None


def test_another_tensorrt_names_both_ways_out():
    with pytest.raises(IncompatibleEngine) as e:
        runtime.compatibility(built("8.6.1"), Host("10.0.1", *H100))
    message = str(e.value)
    assert "built with TensorRT 8.6.1 and this host has TensorRT 10.0.1" in message
    assert "Install TensorRT 8.6.1 here (pip install 'tensorrt==8.6.1.*')" in message
    assert ("trtkit build /models/origin_lstm.h5 --target engine --image REPO --tag <a tag with TensorRT 10.0.1> "
            "--gpus all") in message


def test_another_compute_capability_cannot_load():
    with pytest.raises(IncompatibleEngine) as e:
        runtime.compatibility(built(), Host("8.6.1", "NVIDIA A100-SXM4-80GB", "8.0"))
    message = str(e.value)
    assert "built for sm 9.0 and this GPU is sm 8.0" in message
    assert "here TensorRT 8.6.1 on NVIDIA A100-SXM4-80GB, sm 8.0" in message
    assert ("trtkit build /models/origin_lstm.h5 --target engine --image nvcr.io/nvidia/tensorrt --tag 23.10-py3 "
            "--gpus all") in message


@pytest.mark.parametrize("image", ["nvcr.io/nvidia/tensorrt:23.10-py3", "localhost:5000/trt:8.6-py3",
                                   "trtkit/tensorrt@sha256:" + "a" * 64])
def test_the_rebuild_command_names_the_image_as_trtkit_build_takes_it(image):
    """The runtime ships alone, so it spells the image its own way: the same as reproduce.sh and trtkit check."""
    from trtkit.image_ref import image_reference
    args = compat.image_arguments(image)
    assert image_reference(args[1], args[3] if len(args) > 2 else None) == image


def test_another_gpu_of_the_same_capability_loads_with_a_warning():
    warning = runtime.compatibility(built(), Host("8.6.1", "NVIDIA H100 PCIe", "9.0"))
    assert warning.startswith("the engine loads here, but it was tuned on NVIDIA H100 80GB HBM3 (sm 9.0), "
                              "not NVIDIA H100 PCIe: rebuild on this GPU")


@pytest.mark.parametrize("version, supported", [("8.5.3.1", False), ("8.6.0", True), ("10.0.1", True),
                                                ("11.0.0", True)])
def test_tensorrt_86_or_newer(version, supported):
    if supported:
        runtime.require_supported_tensorrt(version)
    else:
        with pytest.raises(IncompatibleEngine, match="needs TensorRT 8.6 or newer"):
            runtime.require_supported_tensorrt(version)


def test_engine_on_another_tensorrt_fails_before_tensorrt_is_touched(tmp_path):
    out = make_output(tmp_path / "model")
    with pytest.raises(IncompatibleEngine, match="built with TensorRT 8.6.1 and this host has TensorRT 10.0.1"):
        Engine(out, _probe=probe("10.0.1"))
    assert "tensorrt" not in sys.modules


def test_engine_on_another_gpu_fails_before_tensorrt_is_touched(tmp_path):
    out = make_output(tmp_path / "model")
    with pytest.raises(IncompatibleEngine, match="built for sm 9.0 and this GPU is sm 8.0"):
        Engine(out / "model.plan", _probe=probe("8.6.1", ("NVIDIA A100-SXM4-80GB", "8.0")))
    assert "tensorrt" not in sys.modules


def test_a_plan_the_manifest_does_not_describe_is_refused(tmp_path):
    out = make_output(tmp_path / "model", sha256="f" * 64)
    with pytest.raises(IncompatibleEngine, match="sha256 differs"):
        Engine(out, _probe=probe("8.6.1"))


def test_an_older_tensorrt_is_refused_even_when_it_built_the_engine(tmp_path):
    out = make_output(tmp_path / "model", tensorrt="8.5.3.1")
    with pytest.raises(IncompatibleEngine, match="needs TensorRT 8.6 or newer"):
        Engine(out, _probe=probe("8.5.3.1"))


def test_past_the_checks_tensorrt_itself_is_needed(tmp_path):
    """Another H100 model: a warning, then loading, which needs TensorRT (not installed in the test venv)."""
    out = make_output(tmp_path / "model")
    with pytest.warns(RuntimeWarning, match="tuned on NVIDIA H100 80GB HBM3"), \
            pytest.raises(ImportError, match=r"pip install 'trtkit\[runtime\]'"):
        Engine(out, _probe=probe("8.6.1", ("NVIDIA H100 PCIe", "9.0")))


def test_check_false_skips_the_checks(tmp_path):
    out = make_output(tmp_path / "model", sha256="f" * 64)
    with pytest.raises(ImportError, match="TensorRT's Python package"):
        Engine(out, check=False, _probe=probe("10.0.1"))


@pytest.mark.parametrize("option", [{"graph_cache_size": 0}, {"max_lanes": 0}, {"stream_chunk_bytes": 0},
                                    {"small_batch_bytes": -1}, {"fill_threads": 0}])
def test_options_are_checked_first(tmp_path, option):
    with pytest.raises(ValueError, match="1 or more|at least 1"):
        Engine(tmp_path / "missing.plan", **option)


def test_locate(tmp_path):
    out = make_output(tmp_path / "model")
    assert runtime.locate(str(out)) == (str(out / "model.plan"), str(out / "trtkit.json"))
    lone = tmp_path / "elsewhere" / "lstm.plan"
    lone.parent.mkdir()
    lone.write_bytes(b"x")
    assert runtime.locate(str(lone)) == (str(lone), None)
    with pytest.raises(FileNotFoundError, match="has no model.plan"):
        runtime.locate(str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="no engine at"):
        runtime.locate(str(tmp_path / "missing"))


def test_read_manifest(tmp_path):
    out = make_output(tmp_path / "model")
    manifest = runtime.read_manifest(str(out / "trtkit.json"), "model.plan")
    assert manifest.built == built()
    assert manifest.names["inputs"][0]["keras_tensor"] == "lstm_1_input:0"
    assert runtime.read_manifest(str(out / "trtkit.json"), "other.plan") is None   # not this manifest's engine
    onnx = make_output(tmp_path / "onnx", target="onnx")
    assert runtime.read_manifest(str(onnx / "trtkit.json"), "model.plan") is None


def test_a_manifest_without_the_engine_record_is_refused(tmp_path):
    out = make_output(tmp_path / "model")
    manifest = json.loads((out / "trtkit.json").read_text())
    manifest["engine"] = {"tensorrt": "8.6.1"}
    (out / "trtkit.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleEngine, match="lacks the engine's TensorRT version and GPU"):
        runtime.read_manifest(str(out / "trtkit.json"), "model.plan")
