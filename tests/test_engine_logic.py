"""The engine step's pure logic: profiles, trtexec command lines, cache names, calibration data.

No TensorRT and no GPU needed: these only build values that TensorRT or
trtexec later receives.
"""
import enum
import json
import re
import sys

import numpy as np
import pytest

from trtkit_steps import contract, engine  # noqa: F401  (the step imports every piece)
from trtkit_steps.common import StepError, Unsupported, save_arrays
from trtkit_steps.trt import calibration, profiles, settings, trtexec

LSTM_INPUT = {"name": "lstm_1_input", "shape": [None, 11, 192], "dtype": "float32"}


def _profiles(shapes, inputs=(LSTM_INPUT,)):
    return profiles.resolve_profiles(list(inputs), shapes)


def _job(precision="fp32", tf32=False, workspace=None, tactic_sources=None, shapes=None, strict=False,
         exact_batches=None, io_precision="fp32", recipe=None):
    plan = dict(contract.option_defaults(), precision=precision, tf32=tf32, workspace=workspace,
                disabled_tactic_sources=tactic_sources, strict_timing_cache=strict, exact_batches=exact_batches or [],
                io_precision=io_precision)
    build = settings.BuildSettings(plan, _profiles(shapes or {}))
    build.recipe = recipe or ("flags" if precision != "fp32" else "fp32")
    return settings.BuildJob(build, "/w/artifacts/model.onnx", "/w/artifacts/model.plan", None,
                             "/w/artifacts/timing.cache")


# --- profiles -----------------------------------------------------------------------

def test_default_profile_is_batch_1_1024_100000_for_the_lstm_model():
    assert _profiles({}) == {"lstm_1_input": {"min": [1, 11, 192], "opt": [1024, 11, 192],
                                              "max": [100000, 11, 192]}}


def test_default_max_batch_keeps_one_batch_within_1_gib():
    big = {"name": "image", "shape": [None, 3, 512, 512], "dtype": "float32"}  # 3 MiB a sample
    profile = _profiles({}, [big])["image"]
    assert profile["max"] == [2 ** 30 // (3 * 512 * 512 * 4), 3, 512, 512] == [341, 3, 512, 512]
    assert profile["opt"][0] == 341  # opt never exceeds max


def test_default_profile_counts_the_dtype_size():
    small = {"name": "ids", "shape": [None, 2 ** 20], "dtype": "int8"}
    assert _profiles({}, [small])["ids"]["max"][0] == 1024


def test_fixed_batch_input_gets_its_one_shape():
    fixed = {"name": "x", "shape": [4, 8], "dtype": "float32"}
    assert _profiles({}, [fixed]) == {"x": {"min": [4, 8], "opt": [4, 8], "max": [4, 8]}}


def test_batch_sizes_in_shapes_take_the_other_dims_from_the_model():
    profile = _profiles({"lstm_1_input": [1, 100000, 100000]})["lstm_1_input"]
    assert profile == {"min": [1, 11, 192], "opt": [100000, 11, 192], "max": [100000, 11, 192]}


def test_whole_shapes_in_shapes_are_taken_as_given():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    profile = _profiles({"tokens": [[1, 8], [32, 128], [64, 512]]}, [text])["tokens"]
    assert profile == {"min": [1, 8], "opt": [32, 128], "max": [64, 512]}


def test_unknown_dims_without_shapes_ask_for_shapes():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    with pytest.raises(StepError, match="--shapes tokens:MIN/OPT/MAX"):
        _profiles({}, [text])


def test_unknown_dims_with_only_batch_sizes_ask_for_whole_shapes():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    with pytest.raises(StepError, match="whole shapes.*NxN"):
        _profiles({"tokens": [1, 8, 64]}, [text])


@pytest.mark.parametrize("bad", [
    [64, 8, 1],                               # min > opt > max
    [[1, 11, 192], [8, 11, 192], [4, 11, 192]],
    [[1, 11], [8, 11], [16, 11]],             # wrong rank
    [0, 8, 16],                               # a zero batch
    [1, 8],                                   # not three shapes
])
def test_bad_shapes_are_refused(bad):
    with pytest.raises(StepError, match="lstm_1_input"):
        _profiles({"lstm_1_input": bad})


def test_shapes_for_an_unknown_input_name_the_real_inputs():
    with pytest.raises(StepError, match="lstm_1_input"):
        _profiles({"input_1": [1, 2, 3]})


class _RowEngine:
    """A stand-in for an engine of the given profiles (pure logic): each output row is the input row doubled (with
    a batch-wide sum beside if asked); it refuses batches its profile does not take, as TensorRT does."""

    def __init__(self, low, high, total=False):
        self.low, self.high, self.total, self.batches = low, high, total, []

    def run(self, engine_path, batches, scratch, profile=0):
        self.batches += [len(batch["x"]) for batch in batches]
        assert all(self.low <= len(batch["x"]) <= self.high for batch in batches)
        return [dict({"y": batch["x"] * 2}, **({"total": np.float32(batch["x"].sum())} if self.total else {}))
                for batch in batches]


def _reference_through(low, high, rows=8, total=False):
    inputs = {"x": np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)}
    fake = _RowEngine(low, high, total)
    profile = {"x": {"min": [low, 3], "opt": [low, 3], "max": [high, 3]}}
    return inputs, fake, engine.run_reference(fake, "model.plan", inputs, profile, "scratch")


def test_the_reference_runs_as_it_is_where_the_profile_takes_it():
    inputs, fake, outputs = _reference_through(1, 100000, total=True)
    assert fake.batches == [8]
    np.testing.assert_array_equal(outputs["y"], inputs["x"] * 2)
    assert outputs["total"] == inputs["x"].sum()   # an output without the batch first stays as the engine gave it


@pytest.mark.parametrize("low, high, batches", [
    (1, 1, [1] * 8),       # --shapes x:1/1/1
    (3, 3, [3, 3, 3]),     # rows 6 and 7 run beside rows 0 again
    (64, 64, [64]),        # the reference's rows repeated up to the smallest batch
    (2, 5, [5, 5]),
])
def test_the_reference_runs_in_batches_the_profile_takes(low, high, batches):
    inputs, fake, outputs = _reference_through(low, high)
    assert fake.batches == batches
    np.testing.assert_array_equal(outputs["y"], inputs["x"] * 2)


def test_reference_runs_repeat_rows_only_to_fill_a_batch():
    runs = profiles.reference_runs({"x": {"min": [3, 2], "opt": [3, 2], "max": [3, 2]}}, 8)
    assert [(list(indices), kept) for indices, kept in runs] == [([0, 1, 2], 3), ([3, 4, 5], 3), ([6, 7, 0], 2)]


def test_inputs_without_a_common_batch_size_are_refused():
    apart = {"a": {"min": [1, 2], "opt": [1, 2], "max": [4, 2]}, "b": {"min": [8, 2], "opt": [8, 2], "max": [9, 2]}}
    with pytest.raises(StepError, match="no batch size in common"):
        profiles.reference_runs(apart, 8)


def test_an_output_without_the_batch_first_cannot_be_verified_in_pieces():
    with pytest.raises(StepError, match="total .* does not have the batch first"):
        engine.run_reference(_RowEngine(1, 1, total=True), "model.plan", {"x": np.ones((8, 3), np.float32)},
                             {"x": {"min": [1, 3], "opt": [1, 3], "max": [1, 3]}}, "scratch")


# --- trtexec ------------------------------------------------------------------------

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


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_11_builds_the_verified_rewrite_with_no_precision_flags(precision, tmp_path):
    """TensorRT 11 without a TensorRT 11: the recipe is the rewrite, trtexec gets no precision flag, and the ONNX
    it builds is the reduced-precision model the onnx_precision step verified (contract.REDUCED_ONNX)."""
    recipe, why = settings.choose_recipe("11.5.0", precision, "auto")
    assert recipe == "rewrite" and "strongly typed" in why
    with pytest.raises(Unsupported, match="no FP16/INT8 builder flags"):
        settings.choose_recipe("11.5.0", precision, "flags")
    plan = dict(contract.option_defaults(), precision=precision, cache_dir=str(tmp_path / "cache"))
    (tmp_path / contract.ARTIFACTS).mkdir()
    with pytest.raises(Unsupported, match=contract.REDUCED_ONNX[precision]):
        engine._build_job(plan, str(tmp_path), {"inputs": [LSTM_INPUT]}, _job(precision, recipe=recipe).settings,
                          "11.5.0", "H100", ("9", "0"))
    (tmp_path / contract.ARTIFACTS / contract.REDUCED_ONNX[precision]).write_bytes(b"onnx")
    job, _ = engine._build_job(plan, str(tmp_path), {"inputs": [LSTM_INPUT]},
                               _job(precision, recipe=recipe).settings, "11.5.0", "H100", ("9", "0"))
    assert job.onnx.endswith(contract.REDUCED_ONNX[precision]) and job.calibration is None, "Q/DQ needs no calibrator"
    args = trtexec.trtexec_build_args("trtexec", (11, 5, 0), job, "e")
    assert "--onnx=" + job.onnx in args
    assert not [a for a in args if a in ("--noTF32", "--fp16", "--int8", "--stronglyTyped") or a.startswith("--calib")]


def test_the_recipe_follows_the_tensorrt_version():
    assert settings.choose_recipe("8.6.1", "fp16", "auto")[0] == "flags"
    assert settings.choose_recipe("10.13.0", "int8", "auto")[0] == "rewrite"
    assert settings.choose_recipe("10.13.0", "fp16", "flags")[0] == "flags"
    assert settings.choose_recipe("8.6.1", "fp32", "rewrite")[0] == "fp32"
    with pytest.raises(Unsupported, match="TensorRT 8.6.1 does not"):
        settings.choose_recipe("8.6.1", "fp16", "rewrite")
    args = trtexec.trtexec_build_args("trtexec", (10, 13, 0), _job("fp16", recipe="rewrite"), "e")
    assert "--stronglyTyped" in args and "--fp16" not in args


def test_plan_values_outside_their_declaration_are_refused(tmp_path):
    """read_plan checks every build option's value against the contract's declaration: the choices, bounds and
    kinds the host's options allow (a precision the steps do not know never reaches them)."""
    base = dict(contract.option_defaults(), model="/trtkit/model/m.h5", model_format="h5", trust_model=False,
                target="engine", mode="build", bench=None, cache_dir="/trtkit/work/cache")
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(base))
    assert contract.read_plan(str(path))["optimization_level"] == 3
    for key, value in (("precision", "bf16"), ("io_precision", "int8"), ("optimization_level", 6), ("tf32", 1),
                       ("exact_batches", [64, 1]), ("opset", None), ("sample_data", "/etc/passwd"),
                       ("disabled_tactic_sources", ["cublas"]), ("shapes", {"x": [1, 2]}), ("atol", float("nan"))):
        path.write_text(json.dumps(dict(base, **{key: value})))
        with pytest.raises(contract.PlanMismatch, match=f"invalid \\['{key}'\\]"):
            contract.read_plan(str(path))


def test_strongly_typed_networks_refuse_float16_io():
    settings.check_precision(10, "flags", "fp16")
    for major, recipe in ((11, "fp32"), (10, "rewrite")):
        with pytest.raises(Unsupported, match="strongly typed.*--io-precision fp16 cannot apply"):
            settings.check_precision(major, recipe, "fp16")


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


# --- caches -------------------------------------------------------------------------

def test_timing_cache_name_holds_version_gpu_and_sm():
    name = settings.timing_cache_name("8.6.0", "NVIDIA H100 80GB HBM3", (9, 0))
    assert name == "timing-8.6.0-NVIDIA_H100_80GB_HBM3-sm90.cache"


def test_calibration_cache_name_changes_with_model_data_and_version(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"model one")
    data = {"x": np.arange(6, dtype=np.float32).reshape(3, 2)}
    name = calibration.calibration_cache_name(str(onnx), "8.6.0", data)
    assert name.startswith("calibration-") and name.endswith(".cache")
    assert calibration.calibration_cache_name(str(onnx), "8.6.0", data) == name
    assert calibration.calibration_cache_name(str(onnx), "10.3.0", data) != name
    assert calibration.calibration_cache_name(str(onnx), "8.6.0", {"x": data["x"] + 1}) != name
    onnx.write_bytes(b"model two")
    assert calibration.calibration_cache_name(str(onnx), "8.6.0", data) != name


def test_calibration_cache_is_reused_and_shared(tmp_path):
    shared = tmp_path / "calibration-abc.cache"
    data = {"x": np.zeros((4, 2), np.float32)}
    first = tmp_path / "first.cache"
    fresh = calibration.Calibration(data, str(first), str(shared))
    assert not fresh.reused and not first.exists()
    first.write_bytes(b"scales")  # what Polygraphy's calibrator writes when TensorRT calibrates
    fresh.save()
    assert shared.read_bytes() == b"scales"
    second = tmp_path / "second.cache"
    again = calibration.Calibration(data, str(second), str(shared))
    assert again.reused and second.read_bytes() == b"scales"  # TensorRT reads it instead of calibrating


def test_calibration_without_a_cache_from_tensorrt_fails(tmp_path):
    with pytest.raises(StepError, match="no INT8 calibration cache"):
        calibration.Calibration({"x": np.zeros((1, 1))}, str(tmp_path / "c.cache"), str(tmp_path / "s.cache")).save()


# --- Polygraphy: what runs without TensorRT (its comparator, the calibration batches) ---------

def test_polygraphy_comparison_gates_on_the_largest_absolute_error():
    from trtkit_steps.trt import polygraphy_api
    backend = polygraphy_api.PolygraphyApi.__new__(polygraphy_api.PolygraphyApi)  # no TensorRT needed to compare
    backend.api, backend.comparator = polygraphy_api.import_polygraphy()
    expected = {"y": np.array([[0.5], [0.25]], np.float32)}
    close = {"y": expected["y"] + np.float32(1e-5)}
    errors, passed = backend.compare(expected, close, 1e-4)
    assert passed and errors["y"]["max_abs_err"] == pytest.approx(1e-5, rel=1e-2)
    errors, passed = backend.compare(expected, {"y": expected["y"] + np.float32(1e-3)}, 1e-4)
    assert not passed and errors["y"]["max_abs_err"] == pytest.approx(1e-3, rel=1e-2)
    assert errors["y"]["max_rel_err"] == pytest.approx(4e-3, rel=1e-2)
    assert backend.compare(expected, {"y": expected["y"] + 1}, None)[1] is None  # INT8: reported, no verdict


@pytest.mark.parametrize("polygraphy", [False, True])
def test_the_same_infinity_is_no_error_and_nan_is(polygraphy):
    """A Keras output of -inf matched exactly gave a NaN error (inf - inf) and failed a right artifact."""
    from trtkit_steps.common import compare
    from trtkit_steps.trt import polygraphy_api
    backend = polygraphy_api.PolygraphyApi.__new__(polygraphy_api.PolygraphyApi)
    backend.api, backend.comparator = polygraphy_api.import_polygraphy()
    check = (lambda e, a: backend.compare(e, a, 1e-4)) if polygraphy else (lambda e, a: (compare(e, a), None))
    expected = {"y": np.array([-np.inf, np.inf, 0.5], np.float32)}
    errors, passed = check(expected, {"y": expected["y"].copy()})
    assert errors["y"]["max_abs_err"] == 0.0 and passed in (True, None)
    errors, passed = check(expected, {"y": np.array([np.inf, np.inf, 0.5], np.float32)})
    assert not errors["y"]["max_abs_err"] <= 1e-4 and passed in (False, None)
    errors, passed = check(expected, {"y": np.array([-np.inf, np.nan, 0.5], np.float32)})
    assert not errors["y"]["max_abs_err"] <= 1e-4 and passed in (False, None)


def test_polygraphy_calibration_feeds_whole_batches_only():
    from trtkit_steps.trt import polygraphy_api
    rows = np.arange(150 * 2, dtype=np.float32).reshape(150, 2)
    cal = calibration.Calibration.__new__(calibration.Calibration)
    cal.arrays, cal.rows = {"x": rows}, 150
    batches = polygraphy_api._calibration_batches(cal)
    assert [b["x"].shape for b in batches] == [(64, 2), (64, 2)]   # the last 22 rows make no whole batch
    assert batches[1]["x"][0, 0] == rows[64, 0]


class _Tensor:
    def __init__(self, dtype):
        self.dtype = dtype


class _Network:
    def __init__(self, inputs, outputs):
        self.inputs, self.outputs = [_Tensor(d) for d in inputs], [_Tensor(d) for d in outputs]
        self.num_inputs, self.num_outputs = len(inputs), len(outputs)

    def get_input(self, index):
        return self.inputs[index]

    def get_output(self, index):
        return self.outputs[index]


@pytest.mark.parametrize("io_precision, expected", [("fp32", ["float32", "int32", "float32"]),
                                                     ("fp16", ["float16", "int32", "float16"])])
def test_float16_io_changes_the_float32_inputs_and_outputs_only(io_precision, expected):
    from types import SimpleNamespace

    from trtkit_steps.trt import polygraphy_api
    network = _Network(["float32", "int32"], ["float32"])
    polygraphy_api._set_io_precision(SimpleNamespace(float32="float32", float16="float16"), network, io_precision)
    assert [t.dtype for t in network.inputs + network.outputs] == expected


def test_verification_feeds_the_engine_its_input_types_and_reads_float16_as_float32():
    """Polygraphy's own input check refuses float32 for a float16 input: run() casts first, as trtkit.runtime
    does, and hands float32 outputs to the comparison against Keras."""
    from polygraphy.backend.base import util as base_util
    from polygraphy.common import TensorMetadata
    from polygraphy.datatype import DataType

    from trtkit_steps.trt import polygraphy_api

    class Runner:
        def __init__(self, engine, optimization_profile):
            self.meta = TensorMetadata().add("x", DataType.FLOAT16, (None, 2)).add("ids", DataType.INT32, (None,))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def get_input_metadata(self, use_numpy_dtypes):
            assert use_numpy_dtypes is False
            return self.meta

        def infer(self, feed):
            base_util.check_inputs(feed, self.meta)
            return {"y": (feed["x"] * 2).astype(np.float16), "n": feed["ids"] + 1}

    backend = polygraphy_api.PolygraphyApi.__new__(polygraphy_api.PolygraphyApi)
    backend.api = type("Api", (), {"TrtRunner": Runner})
    backend.load = lambda path: path
    x = np.array([[0.1, 0.2], [0.3, 1 / 3]], np.float32)
    [out] = backend.run("model.plan", [{"x": x, "ids": np.array([1, 2], np.int64)}], "scratch")
    assert out["y"].dtype == np.float32 and out["n"].dtype == np.int32
    np.testing.assert_array_equal(out["y"], (x.astype(np.float16) * 2).astype(np.float32))
    assert np.abs(out["y"] - x * 2).max() > 0   # the float16 rounding is what verification sees, as users do


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


# --- calibration data ---------------------------------------------------------------

def test_calibration_from_one_npy_casts_to_the_input_dtype(tmp_path):
    np.save(tmp_path / "calib.npy", np.ones((5, 11, 192), np.float64))
    arrays = calibration.load_calibration_data(str(tmp_path / "calib.npy"), [LSTM_INPUT])
    assert arrays["lstm_1_input"].shape == (5, 11, 192) and arrays["lstm_1_input"].dtype == np.float32


def test_calibration_folder_joins_files_along_the_batch(tmp_path):
    inputs = [{"name": "a", "shape": [None, 2], "dtype": "float32"},
              {"name": "b/c:0", "shape": [None, 3], "dtype": "int32"}]
    save_arrays(str(tmp_path / "part1.npz"), {"a": np.zeros((2, 2)), "b/c:0": np.zeros((2, 3))})
    np.savez(tmp_path / "part2.npz", **{"a": np.ones((3, 2)), "b/c:0": np.ones((3, 3))})
    (tmp_path / "notes.txt").write_text("ignored")
    arrays = calibration.load_calibration_data(str(tmp_path), inputs)
    assert arrays["a"].shape == (5, 2) and arrays["b/c:0"].shape == (5, 3)
    assert arrays["b/c:0"].dtype == np.int32 and arrays["a"][2:].min() == 1


def test_calibration_npz_with_one_unnamed_array_feeds_the_only_input(tmp_path):
    np.savez(tmp_path / "calib.npz", np.ones((3, 11, 192)))
    assert calibration.load_calibration_data(str(tmp_path / "calib.npz"), [LSTM_INPUT])["lstm_1_input"].shape[0] == 3


def test_calibration_npy_for_two_inputs_is_refused(tmp_path):
    np.save(tmp_path / "calib.npy", np.ones((3, 2)))
    inputs = [dict(LSTM_INPUT, name="a"), dict(LSTM_INPUT, name="b")]
    with pytest.raises(StepError, match="npz keyed by input name"):
        calibration.load_calibration_data(str(tmp_path / "calib.npy"), inputs)


def test_calibration_npz_missing_an_input_is_refused(tmp_path):
    np.savez(tmp_path / "calib.npz", a=np.ones((3, 2)), c=np.ones((3, 2)))
    inputs = [dict(LSTM_INPUT, name="a"), dict(LSTM_INPUT, name="b")]
    with pytest.raises(StepError, match=r"lacks input\(s\) \['b'\]"):
        calibration.load_calibration_data(str(tmp_path / "calib.npz"), inputs)


def test_calibration_with_uneven_sample_counts_is_refused(tmp_path):
    np.savez(tmp_path / "calib.npz", a=np.ones((3, 2)), b=np.ones((4, 2)))
    inputs = [{"name": name, "shape": [None, 2], "dtype": "float32"} for name in ("a", "b")]
    with pytest.raises(StepError, match="same, non-zero number"):
        calibration.load_calibration_data(str(tmp_path / "calib.npz"), inputs)


@pytest.mark.parametrize("name, make, message", [
    ("dims.npy", lambda p: np.save(p, np.ones((5, 11, 100))), "--calib-data: input lstm_1_input has shape 5x11x100"),
    ("words.npy", lambda p: np.save(p, np.array([["a"] * 192] * 11)[None]), "input lstm_1_input cannot be float32"),
    ("pickle.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "is not a .npy or .npz file numpy"),
    ("text.npz", lambda p: p.write_text("not numpy\n"), "is not a .npy or .npz file numpy reads"),
])
def test_bad_calibration_data_is_one_line(tmp_path, name, make, message):
    """Calibration data of the wrong shape or type went to TensorRT as it was, and a file numpy cannot read ended the
    step with numpy's traceback."""
    make(tmp_path / name)
    with pytest.raises(StepError, match=re.escape(message)):
        calibration.load_calibration_data(str(tmp_path / name), [LSTM_INPUT])


def test_calibration_files_of_different_row_shapes_are_refused(tmp_path):
    """A sequence length the model leaves open must still be one length: np.concatenate refused with a traceback."""
    np.save(tmp_path / "a.npy", np.ones((2, 5, 4)))
    np.save(tmp_path / "b.npy", np.ones((2, 6, 4)))
    spec = {"name": "seq", "shape": [None, None, 4], "dtype": "float32"}
    with pytest.raises(StepError, match=r"input seq rows of different shapes \[\(5, 4\), \(6, 4\)\]"):
        calibration.load_calibration_data(str(tmp_path), [spec])


def test_tftrt_calibrates_on_a_calibration_folder_and_npy(tmp_path):
    """TF-TRT read --calib-data only as an .npz, and calibrated INT8 on the random reference inputs otherwise."""
    from trtkit_steps import tftrt
    np.save(tmp_path / "part1.npy", np.full((2, 11, 192), 3.0))
    np.save(tmp_path / "part2.npy", np.full((1, 11, 192), 4.0))
    for given in (tmp_path, tmp_path / "part1.npy"):
        feed = tftrt.calibration_feed({"calib_data": str(given)}, [LSTM_INPUT])
        assert len(feed) == 1 and feed[0].dtype == np.float32 and feed[0].min() == 3.0
    assert tftrt.calibration_feed({"calib_data": str(tmp_path)}, [LSTM_INPUT])[0].shape == (3, 11, 192)


def test_missing_calibration_data_is_refused(tmp_path):
    with pytest.raises(StepError, match="does not exist"):
        calibration.load_calibration_data(str(tmp_path / "nothing.npz"), [LSTM_INPUT])
    with pytest.raises(StepError, match="no .npy or .npz"):
        calibration.load_calibration_data(str(tmp_path), [LSTM_INPUT])


def test_default_tolerances_follow_precision_and_tf32():
    assert settings.default_atol("fp32", False) == 1e-4
    assert settings.default_atol("fp32", True) == settings.TF32_ATOL
    assert settings.default_atol("fp16", True) == 1e-2
    assert settings.default_atol("int8", False) is None


def test_strict_timing_cache_is_refused_where_tensorrt_cannot_refuse_misses(tmp_path):
    """TensorRT 8.6 has no ERROR_ON_TIMING_CACHE_MISS (seen on the GPU machine): a clear exit 19, no build."""
    from types import SimpleNamespace

    from trtkit_steps.trt import polygraphy_api
    trt_86 = SimpleNamespace(__version__="8.6.0", BuilderFlag=SimpleNamespace(FP16=1, INT8=2, TF32=7))
    with pytest.raises(Unsupported, match="TensorRT 8.6.0 cannot"):
        polygraphy_api.PolygraphyApi(trt_86).build(_job(strict=True))
    old_trtexec = tmp_path / "trtexec"
    old_trtexec.write_text("#!/bin/sh\necho '&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --help'\n")
    old_trtexec.chmod(0o755)
    with pytest.raises(Unsupported, match="cannot"):
        trtexec.Trtexec(str(old_trtexec)).build(_job(strict=True))


def test_typical_batch_becomes_the_profiles_opt_where_shapes_do_not_say():
    two = [LSTM_INPUT, {"name": "b", "shape": [None, 4], "dtype": "float32"}]
    tuned = profiles.resolve_profiles(two, {"b": [1, 8, 16]}, typical_batch=100000)
    assert tuned["lstm_1_input"] == {"min": [1, 11, 192], "opt": [100000, 11, 192], "max": [100000, 11, 192]}
    assert tuned["b"] == {"min": [1, 4], "opt": [8, 4], "max": [16, 4]}       # --shapes wins
    bigger = profiles.resolve_profiles([LSTM_INPUT], {}, typical_batch=200000)["lstm_1_input"]
    assert bigger["opt"][0] == bigger["max"][0] == 200000                    # MAX grows to hold it


def test_exact_batches_add_a_profile_per_batch_after_the_full_range():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    full = profiles.resolve_profiles([LSTM_INPUT, text], {"tokens": [[1, 8], [32, 128], [64, 512]]})
    found = profiles.with_exact_batches(full, [1, 64])
    assert found[0] == full                                   # profile 0 stays the full range
    assert found[1]["lstm_1_input"] == {"min": [1, 11, 192], "opt": [1, 11, 192], "max": [1, 11, 192]}
    assert found[2]["tokens"] == {"min": [64, 8], "opt": [64, 128], "max": [64, 512]}   # only the batch is fixed
    assert _job(exact_batches=[1, 64]).settings.all_profiles[1:] == [
        {"lstm_1_input": {"min": [b, 11, 192], "opt": [b, 11, 192], "max": [b, 11, 192]}} for b in (1, 64)]
    assert _job().settings.all_profiles == [_job().settings.profiles]


def test_exact_batches_of_a_fixed_batch_input_are_refused():
    fixed = profiles.resolve_profiles([{"name": "x", "shape": [4, 8], "dtype": "float32"}], {})
    assert len(profiles.with_exact_batches(fixed, [4])) == 2
    with pytest.raises(StepError, match="input x takes only batch 4"):
        profiles.with_exact_batches(fixed, [1, 4])


@pytest.mark.parametrize("options, named", [({"exact_batches": [1]}, "--exact-batches"),
                                            ({"io_precision": "fp16"}, "--io-precision fp16")])
def test_trtexec_refuses_what_only_the_python_api_builds(tmp_path, options, named):
    trtexec_86 = tmp_path / "trtexec"
    trtexec_86.write_text("#!/bin/sh\necho '&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --help'\n")
    trtexec_86.chmod(0o755)
    with pytest.raises(Unsupported, match=f"^{named}: .* needs TensorRT's Python API"):
        trtexec.Trtexec(str(trtexec_86)).build(_job(**options))


@pytest.mark.parametrize("off", [0.5, float("nan")])
def test_verification_gates_on_the_worst_profile(tmp_path, capsys, off):
    """Each profile runs the reference on its own (profile 1: batch 1 at a time); one profile off fails the build,
    with that profile's outputs as the evidence. A NaN profile is the worst (max() passed over it)."""
    from trtkit_steps import contract
    from trtkit_steps.common import VerificationFailed, compare, load_arrays

    class Engine(_RowEngine):
        def run(self, engine_path, batches, scratch, profile=0):
            outputs = super().run(engine_path, batches, scratch)
            return [{"y": out["y"] + (np.float32(off) if profile == 1 else 0.0)} for out in outputs]

        def compare(self, expected, actual, atol):
            return compare(expected, actual), None

    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    (tmp_path / contract.ARTIFACTS).mkdir()
    save_arrays(str(tmp_path / contract.ARTIFACTS / contract.REFERENCE_INPUTS), {"x": x})
    save_arrays(str(tmp_path / contract.ARTIFACTS / contract.REFERENCE_OUTPUTS), {"y": x * 2})
    job_settings = settings.BuildSettings(dict(contract.option_defaults(), exact_batches=[1, 64]),
                                          {"x": {"min": [1, 3], "opt": [8, 3], "max": [100, 3]}})
    fake = Engine(1, 100)
    with pytest.raises(VerificationFailed, match="differs from Keras by %.3g" % off):
        engine._verify(fake, str(tmp_path), "model.plan", {"atol": 0.1}, job_settings)
    assert fake.batches == [8] + [1] * 8 + [64]
    np.testing.assert_array_equal(load_arrays(str(tmp_path / contract.EVIDENCE / "actual.npz"))["y"], x * 2 + off)


def test_a_nan_output_fails_verification_in_any_position(tmp_path):
    """max() passes over a NaN that is not first: an output that is NaN must fail the gate wherever it comes."""
    from trtkit_steps.common import VerificationFailed, gate
    errors = {"a": {"max_abs_err": 0.0, "max_rel_err": 0.0}, "b": {"max_abs_err": float("nan"), "max_rel_err": 0.0}}
    with pytest.raises(VerificationFailed, match="differs from Keras by nan"):
        gate("model.onnx", errors, 1e-5)
    assert gate("model.onnx", {"a": {"max_abs_err": 0.0}, "b": {"max_abs_err": 2e-6}}, 1e-5)["max_abs_err"] == 2e-6


def test_the_benchmark_runs_a_batch_on_the_profile_the_runtime_would(monkeypatch):
    """The runner asks trtkit.runtime's select_profile (shipped into the box as trtkit_runtime)."""
    import trtkit
    import trtkit.runtime
    from trtkit_steps.trt import runner
    monkeypatch.setitem(sys.modules, "trtkit_runtime", trtkit)
    monkeypatch.setitem(sys.modules, "trtkit_runtime.runtime", trtkit.runtime)
    ranges = [(1, 100000), (1, 1), (64, 64)]

    class Engine:
        num_optimization_profiles = len(ranges)

        def get_tensor_profile_shape(self, name, profile):
            low, high = ranges[profile]
            return [(low, 3), (low, 3), (high, 3)]

    class Context:
        def set_optimization_profile_async(self, profile, stream):
            chosen.append(profile)
            return True

    class Stream:
        handle = 0

        def synchronize(self):
            pass

    chosen = []
    bench_runner = object.__new__(runner.EngineRunner)
    bench_runner.engine, bench_runner._context, bench_runner._stream = Engine(), Context(), Stream()
    bench_runner._named = True
    for batch in (1, 2, 64, 100000):
        bench_runner._select_profile({"x": (batch, 3)})
    assert chosen == [1, 0, 2, 0]
    with pytest.raises(StepError, match="fit none of the engine's optimization profiles"):
        bench_runner._select_profile({"x": (8, 4)})


def test_optimisation_level_goes_to_trtexec_from_86_and_only_the_default_before():
    job = _job()
    assert "--builderOptimizationLevel=3" in trtexec.trtexec_build_args("trtexec", (8, 6, 0), job, "e")
    assert not [a for a in trtexec.trtexec_build_args("trtexec", (8, 5, 3), job, "e") if "Optimization" in a]
    job.settings.optimization_level = 5
    assert "--builderOptimizationLevel=5" in trtexec.trtexec_build_args("trtexec", (10, 3, 0), job, "e")
    with pytest.raises(Unsupported, match="--opt-level 5 needs TensorRT 8.6"):
        trtexec.trtexec_build_args("trtexec", (8, 5, 3), job, "e")
