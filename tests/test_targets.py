"""toolkit/targets.py: which artifact a build makes, from the toolchain probe."""
import pytest

from trtkit.errors import GpuUnavailable, TargetUnsupported
from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan, GpuRequest
from trtkit.targets import choose_target, unused_options

TRT_STACK = {"tensorrt": "8.6.0", "tensorflow": "2.21.0", "tftrt": False}


CPU_STACK = {"tensorrt": None, "trtexec": None, "tensorflow": "2.21.0", "tftrt": False}


def test_default_target_is_engine_only_with_gpu_and_tensorrt():
    assert choose_target(None, GpuRequest("auto"), True, TRT_STACK).target == "engine"
    assert choose_target(None, GpuRequest("auto"), False, TRT_STACK).target == "onnx"
    assert "no NVIDIA runtime" in choose_target(None, GpuRequest("auto"), False, TRT_STACK).reason
    assert choose_target(None, GpuRequest("all"), True, CPU_STACK).reason == "default: the image has no TensorRT"
    trtexec_only = dict(CPU_STACK, trtexec={"path": "/usr/src/tensorrt/bin/trtexec", "version": "10.8.0"})
    assert choose_target(None, GpuRequest("all"), True, trtexec_only).target == "engine"
    old = choose_target(None, GpuRequest("all"), True, dict(TRT_STACK, tensorrt="5.1.5"))
    assert old.target == "onnx" and "TensorRT 5.1.5 is older than 8.0" in old.reason


def test_requested_targets_are_checked_against_the_stack():
    with pytest.raises(TargetUnsupported, match="no TF-TRT.*nvcr.io/nvidia/tensorflow"):
        choose_target("tftrt", GpuRequest("all"), True, TRT_STACK)
    with pytest.raises(TargetUnsupported, match="no TensorRT"):
        choose_target("engine", GpuRequest("all"), True, CPU_STACK)
    with pytest.raises(GpuUnavailable):
        choose_target("engine", GpuRequest("none"), True, TRT_STACK)
    assert choose_target("frozen", GpuRequest("none"), False, CPU_STACK).target == "frozen"


def test_options_that_shape_only_tensorrt_builds_are_named_for_other_targets(tmp_path):
    plan = BuildPlan(model=ModelRef(tmp_path / "m.h5", "h5"), image="i:t", settings={
        "precision": "int8", "calib_data": tmp_path / "c.npz", "exact_batches": [1, 64], "io_precision": "fp16"})
    assert unused_options(plan, "engine") == []
    assert unused_options(plan, "tftrt") == ["--io-precision", "--exact-batches"]
    assert unused_options(plan, "onnx") == ["--io-precision", "--exact-batches"]
    assert unused_options(plan, "frozen") == ["--precision", "--io-precision", "--calib-data", "--exact-batches"]
    assert unused_options(BuildPlan(model=plan.model, image="i:t"), "onnx") == []


def test_exported_models_have_their_own_targets():
    second = choose_target(None, GpuRequest("all"), True, TRT_STACK, "trtkit-output")
    assert second.target == "engine" and "earlier trtkit output" in second.reason
    with pytest.raises(TargetUnsupported, match="needs the Keras model: from an earlier trtkit output"):
        choose_target("onnx", GpuRequest("all"), True, TRT_STACK, "trtkit-output")
    with pytest.raises(GpuUnavailable, match="--target engine needs a GPU"):
        choose_target(None, GpuRequest("none"), True, TRT_STACK, "trtkit-output")
    assert choose_target(None, GpuRequest("none"), False, CPU_STACK, "onnx").target == "onnx"
    with pytest.raises(TargetUnsupported, match="from an onnx file trtkit builds onnx or engine"):
        choose_target("frozen", GpuRequest("none"), False, CPU_STACK, "onnx")
