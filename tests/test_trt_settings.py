"""scripts/trtkit_steps/trt/settings.py: precision, cache names, tactic sources, tolerances."""
import enum

import pytest
from engine_inputs import _job

from trtkit_steps.errors import StepError, Unsupported
from trtkit_steps.trt import settings, trtexec


def test_timing_cache_name_holds_version_gpu_and_sm():
    name = settings.timing_cache_name("8.6.0", "NVIDIA H100 80GB HBM3", (9, 0))
    assert name == "timing-8.6.0-NVIDIA_H100_80GB_HBM3-sm90.cache"


class _TacticSource(enum.IntEnum):  # TensorRT 8.6's values
    CUBLAS = 0
    CUBLAS_LT = 1
    CUDNN = 2
    EDGE_MASK_CONVOLUTIONS = 3
    JIT_CONVOLUTIONS = 4


def test_tactic_mask_clears_the_named_sources():
    assert settings.tactic_mask(31, ["CUBLAS", "cublas_lt", "CUDNN"], _TacticSource) == 0b11000


def test_tactic_mask_refuses_unknown_sources():
    with pytest.raises(StepError, match="CUDNN"):
        settings.tactic_mask(31, ["CUDNN8"], _TacticSource)


def test_default_tolerances_follow_precision_and_tf32():
    assert settings.default_atol("fp32", False) == 1e-4
    assert settings.default_atol("fp32", True) == settings.TF32_ATOL
    assert settings.default_atol("fp16", True) == 1e-2
    assert settings.default_atol("int8", False) is None


def test_the_recipe_follows_the_tensorrt_version():
    assert settings.choose_recipe("8.6.1", "fp16", "auto")[0] == "flags"
    assert settings.choose_recipe("10.13.0", "int8", "auto")[0] == "rewrite"
    assert settings.choose_recipe("10.13.0", "fp16", "flags")[0] == "flags"
    assert settings.choose_recipe("8.6.1", "fp32", "rewrite")[0] == "fp32"
    recipe, why = settings.choose_recipe("8.6.1", "fp16", "rewrite")
    assert recipe == "rewrite" and "PREFER_PRECISION_CONSTRAINTS" in why
    assert not settings.strongly_typed(8, recipe) and settings.strongly_typed(10, recipe)
    with pytest.raises(Unsupported, match="Python API"):     # trtexec cannot set each layer's type
        trtexec.trtexec_build_args("trtexec", (8, 6, 1), _job("fp16", recipe="rewrite"), "e")
    args = trtexec.trtexec_build_args("trtexec", (10, 13, 0), _job("fp16", recipe="rewrite"), "e")
    assert "--stronglyTyped" in args and "--fp16" not in args


def test_strongly_typed_networks_refuse_float16_io():
    settings.check_precision(10, "flags", "fp16")
    for major, recipe in ((11, "fp32"), (10, "rewrite")):
        with pytest.raises(Unsupported, match="typed by its ONNX model.*--io-precision fp16 cannot apply"):
            settings.check_precision(major, recipe, "fp16")
