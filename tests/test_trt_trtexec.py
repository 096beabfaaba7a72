"""scripts/trtkit_steps/trt/trtexec.py: trtexec's command lines and output."""
import numpy as np
import pytest
from engine_inputs import _job

from trtkit_steps.errors import Unsupported
from trtkit_steps.trt import trtexec


@pytest.mark.parametrize("banner, version", [
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --help", (8, 6, 1)),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v8205] # trtexec", (8, 2, 5)),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v7103] # trtexec", (7, 1, 3)),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b17] # trtexec", (10, 3, 0)),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v101600] [b72] # trtexec", (10, 16, 0)),
    ("&&&& RUNNING TensorRT.trtexec [TensorRT v11.1.0.106] [b48] # trtexec", (11, 1, 0)),
    ("trtexec: error while loading shared libraries: libnvinfer.so.8", None),
])
def test_trtexec_version_from_its_banner(banner, version):
    assert trtexec.parse_trtexec_version(banner) == version


def test_trtexec_fp32_build_on_8_6():
    args = trtexec.trtexec_build_args("trtexec", (8, 6, 1), _job(), "/w/model.plan.tmp")
    assert args == [
        "trtexec", "--onnx=/w/artifacts/model.onnx", "--saveEngine=/w/model.plan.tmp",
        "--minShapes=lstm_1_input:1x11x192", "--optShapes=lstm_1_input:1024x11x192",
        "--maxShapes=lstm_1_input:100000x11x192", "--noTF32", "--builderOptimizationLevel=3", "--skipInference",
    ]


def test_trtexec_tf32_keeps_tensorrts_default():
    assert "--noTF32" not in trtexec.trtexec_build_args("trtexec", (10, 3, 0), _job(tf32=True), "e")


@pytest.mark.parametrize("major", [8, 10])
def test_trtexec_precision_flags_up_to_10(major):
    fp16 = trtexec.trtexec_build_args("trtexec", (major, 0, 0), _job("fp16"), "e")
    int8 = trtexec.trtexec_build_args("trtexec", (major, 0, 0), _job("int8"), "e", calibration_cache="/c/cal.cache")
    assert "--fp16" in fp16 and "--int8" not in fp16
    assert {"--fp16", "--int8", "--calib=/c/cal.cache"} <= set(int8)


def test_trtexec_11_fp32_has_no_precision_flags():
    args = trtexec.trtexec_build_args("trtexec", (11, 1, 0), _job(), "e")
    assert not [a for a in args if a in ("--noTF32", "--fp16", "--int8") or a.startswith("--calib")]




def test_trtexec_caches_workspace_and_tactic_sources():
    job = _job(workspace=3 * 2 ** 30, tactic_sources=["CUBLAS", "CUBLAS_LT", "cudnn"])
    args = trtexec.trtexec_build_args("trtexec", (8, 6, 0), job, "e", timing_cache="/cache/t.cache.tmp1")
    assert "--timingCacheFile=/cache/t.cache.tmp1" in args
    assert "--memPoolSize=workspace:3072" in args
    assert "--tacticSources=-CUBLAS,-CUBLAS_LT,-CUDNN" in args


def test_trtexec_without_cache_has_no_cache_flag():
    assert not [a for a in trtexec.trtexec_build_args("trtexec", (8, 6, 0), _job(), "e") if "timingCache" in a]


def test_trtexec_strict_timing_cache_errors_on_a_miss():
    assert "--errorOnTimingCacheMiss" in trtexec.trtexec_build_args("trtexec", (8, 6, 0), _job(strict=True), "e",
                                                                     timing_cache="/w/t.cache")
    assert "--errorOnTimingCacheMiss" not in trtexec.trtexec_build_args("trtexec", (8, 6, 0), _job(), "e")


def test_older_trtexec_flags():
    args = trtexec.trtexec_build_args("trtexec", (8, 2, 5), _job(workspace=2 ** 29), "e")
    assert "--workspace=512" in args and "--buildOnly" in args and "--skipInference" not in args


def test_trtexec_verify_command():
    args = trtexec.trtexec_run_args("trtexec", "/w/model.plan", {"b": (8, 4), "a": (8, 11, 192)},
                                   {"a": "/s/input0.bin", "b": "/s/input1.bin"}, "/s/outputs.json")
    assert args == ["trtexec", "--loadEngine=/w/model.plan", "--shapes=a:8x11x192,b:8x4",
                    "--loadInputs=a:/s/input0.bin,b:/s/input1.bin", "--exportOutput=/s/outputs.json",
                    "--iterations=1", "--warmUp=0", "--duration=0"]


def test_exported_outputs_parse_with_shapes_and_bare_nan():
    text = ('[\n  { "name" : "dense_3"\n  , "dimensions" : "2x1"\n  , "values" : [ 0.5, nan ]\n  }\n'
            ', { "name" : "nan_count"\n  , "dimensions" : "3"\n  , "values" : [ -inf, inf, 1e-07 ]\n  }\n]\n')
    outputs = trtexec.parse_exported_outputs(text)
    assert outputs["dense_3"].shape == (2, 1) and outputs["dense_3"][0, 0] == 0.5
    assert np.isnan(outputs["dense_3"][1, 0])
    assert outputs["nan_count"].tolist() == [-np.inf, np.inf, 1e-07]


def test_exported_outputs_parse_a_negative_nan():
    """glibc prints a NaN with its sign bit set (x86's default NaN, a negated NaN) as -nan."""
    text = '[ { "name" : "y", "dimensions" : "3", "values" : [ -nan, nan, -inf ] } ]'
    values = trtexec.parse_exported_outputs(text)["y"]
    assert np.isnan(values[:2]).all() and values[2] == -np.inf


@pytest.mark.parametrize("options, named", [({"exact_batches": [1]}, "--exact-batches"),
                                            ({"io_precision": "fp16"}, "--io-precision fp16")])
def test_trtexec_refuses_what_only_the_python_api_builds(tmp_path, options, named):
    trtexec_86 = tmp_path / "trtexec"
    trtexec_86.write_text("#!/bin/sh\necho '&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --help'\n")
    trtexec_86.chmod(0o755)
    with pytest.raises(Unsupported, match=f"^{named}: .* needs TensorRT's Python API"):
        trtexec.Trtexec(str(trtexec_86)).build(_job(**options))


def test_optimisation_level_goes_to_trtexec_from_86_and_only_the_default_before():
    job = _job()
    assert "--builderOptimizationLevel=3" in trtexec.trtexec_build_args("trtexec", (8, 6, 0), job, "e")
    assert not [a for a in trtexec.trtexec_build_args("trtexec", (8, 5, 3), job, "e") if "Optimization" in a]
    job.settings.optimization_level = 5
    assert "--builderOptimizationLevel=5" in trtexec.trtexec_build_args("trtexec", (10, 3, 0), job, "e")
    with pytest.raises(Unsupported, match="--opt-level 5 needs TensorRT 8.6"):
        trtexec.trtexec_build_args("trtexec", (8, 5, 3), job, "e")
