"""scripts/trtkit_steps/trt/polygraphy_api.py: what runs without TensorRT (its comparator, the calibration
batches, the network's io types)."""
import numpy as np
import pytest
from engine_inputs import _job

from trtkit_steps.errors import Unsupported
from trtkit_steps.trt import calibration, trtexec


def test_polygraphy_comparison_gates_each_output_on_its_largest_absolute_error():
    from trtkit_steps.trt import polygraphy_api
    backend = polygraphy_api.PolygraphyApi.__new__(polygraphy_api.PolygraphyApi)  # no TensorRT needed to compare
    backend.api, backend.comparator = polygraphy_api.import_polygraphy()
    expected = {"y": np.array([[0.5], [0.25]], np.float32), "price": np.array([[2.4e5], [2.5e5]], np.float32)}
    atol = {"y": 1e-4, "price": 2.5}
    close = {"y": expected["y"] + np.float32(1e-5), "price": expected["price"] + np.float32(0.5)}
    errors, passed = backend.compare(expected, close, atol)
    assert passed and errors["y"]["max_abs_err"] == pytest.approx(1e-5, rel=1e-2)
    errors, passed = backend.compare(expected, dict(close, y=expected["y"] + np.float32(1e-3)), atol)
    assert not passed and errors["y"]["max_abs_err"] == pytest.approx(1e-3, rel=1e-2), \
        "the price's tolerance does not pass the small output"
    assert errors["y"]["max_rel_err"] == pytest.approx(4e-3, rel=1e-2)
    assert backend.compare(expected, close, {"y": None, "price": None})[1] is None  # INT8: reported, no verdict


@pytest.mark.parametrize("polygraphy", [False, True])
def test_the_same_infinity_is_no_error_and_nan_is(polygraphy):
    """A Keras output of -inf matched exactly gave a NaN error (inf - inf) and failed a right artifact."""
    from trtkit_steps.comparison import compare
    from trtkit_steps.trt import polygraphy_api
    backend = polygraphy_api.PolygraphyApi.__new__(polygraphy_api.PolygraphyApi)
    backend.api, backend.comparator = polygraphy_api.import_polygraphy()
    check = (lambda e, a: backend.compare(e, a, {"y": 1e-4})) if polygraphy else (lambda e, a: (compare(e, a), None))
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


@pytest.mark.parametrize("cast_layer", ["CAST", "IDENTITY"])
def test_a_weakly_typed_rewrite_asks_each_float_layer_for_the_type_its_onnx_node_has(cast_layer):
    """TensorRT 8's stand-in for a strongly typed network. Its float tensors read float32 but a cast's, so the types
    are followed through the casts: the float16 region stays float16 (weights have no say), the node the rewrite
    kept FP32 between its casts stays float32, and shape layers and mixed types are left to TensorRT. An ONNX Cast
    is a cast layer from TensorRT 8.6's parser on, an identity layer with its output type before (onnx-tensorrt's
    importer): knowing only the identity, every layer of ResNet50 was asked for FP32 on 8.6."""
    from trt_network import F16, F32, I32, Layer, network, tensorrt

    from trtkit_steps.trt import polygraphy_api

    def cast(source, out, to):
        return Layer("", [source], [out], cast_to=to, cast_layer=cast_layer)
    layers = [cast("x", "x16", F16),                                        # keep_io_types' cast in
              Layer("CONSTANT", [], ["w"]),                                 # weights read float32 here
              Layer("MATRIX_MULTIPLY", ["x16", "w"], ["mm"]),
              Layer("CONVOLUTION", ["mm", None], ["conv"]),                 # an optional input left out
              cast("conv", "conv32", F32),                                  # the kept node, between casts
              Layer("ELEMENTWISE", ["conv32", "w"], ["big"]),
              cast("big", "big16", F16),
              Layer("IDENTITY", ["big16"], ["copy"]),                       # an identity that casts nothing
              Layer("SHAPE", ["big16"], [("shape", I32)]),
              Layer("ELEMENTWISE", ["big16", "conv32"], ["mixed"]),         # no single type: TensorRT's
              Layer("ACTIVATION", ["copy"], ["act"]),
              cast("act", "y", F32)]                                        # and out
    polygraphy_api.keep_onnx_types(tensorrt(cast_layer), network(layers))
    assert [layer.precision for layer in layers] == [
        None, None, F16, F16, None, F32, None, F16, None, None, F16, None]


@pytest.mark.parametrize("types, loops", [(["CONVOLUTION", "ACTIVATION"], False),
                                           (["SHUFFLE", "TRIP_LIMIT", "RECURRENCE", "LOOP_OUTPUT"], True)])
def test_a_network_loops_where_it_has_the_layers_of_a_tensorrt_loop(types, loops):
    """An ONNX Loop parses into TensorRT's ILoop, whose boundary layers name it: a CNN has none."""
    from types import SimpleNamespace

    from trtkit_steps.trt import polygraphy_api
    trt = SimpleNamespace(LayerType=SimpleNamespace(**{name: name for name in (
        "CONVOLUTION", "ACTIVATION", "SHUFFLE", "TRIP_LIMIT", "RECURRENCE", "ITERATOR", "LOOP_OUTPUT")}))
    layers = [SimpleNamespace(type=getattr(trt.LayerType, name)) for name in types]
    network = SimpleNamespace(num_layers=len(layers), get_layer=layers.__getitem__)
    assert polygraphy_api.has_loops(trt, network) is loops


class _FakeTensorRT:
    """TensorRT as parser_errors and build see it: an ONNX parser that fails with two errors, no builder flags."""
    __version__ = "8.6.0"

    class Logger:
        ERROR = 1

        def __init__(self, severity):
            self.severity = severity

    class NetworkDefinitionCreationFlag:
        EXPLICIT_BATCH = 0

    class BuilderFlag:
        pass

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return ("network", flags)

    class OnnxParser:
        num_errors = 2

        def __init__(self, network, logger):
            self.network = network

        def parse_from_file(self, path):
            return False

        def get_error(self, index):
            return ["In node 3 (importQuantizeLinear): UNSUPPORTED_NODE:\n  axis", "second"][index]


def _failing_backend(fail_at):
    from types import SimpleNamespace

    from trtkit_steps.trt import polygraphy_api

    def fails(*args, **kwargs):
        raise RuntimeError("polygraphy.exception.exception.PolygraphyException: Could not parse ONNX correctly")
    backend = polygraphy_api.PolygraphyApi.__new__(polygraphy_api.PolygraphyApi)
    backend.trt, backend.version, backend.major = _FakeTensorRT, "8.6.0", 8
    backend.api = SimpleNamespace(network_from_onnx_path=fails if fail_at == "parse" else lambda *a, **k: (0, 0),
                                  PostprocessConfig=lambda *a: None, engine_bytes_from_network=fails)
    backend._create_config = lambda job: None
    return backend


def test_an_onnx_model_tensorrt_cannot_parse_is_refused_with_the_parsers_reasons():
    """On an H100 the Q/DQ model of --precision-recipe rewrite failed as Polygraphy's traceback's last line."""
    from trtkit_steps.errors import StepError
    with pytest.raises(StepError, match=r"TensorRT 8\.6\.0 cannot parse model\.onnx: In node 3 "
                                        r"\(importQuantizeLinear\): UNSUPPORTED_NODE: axis; second$"):
        _failing_backend("parse").build(_job("int8", recipe="rewrite"))


def test_a_build_that_makes_no_engine_says_which_tensorrt_model_and_recipe(monkeypatch):
    from trtkit_steps.errors import StepError
    from trtkit_steps.trt import polygraphy_api
    monkeypatch.setattr(polygraphy_api, "_check_network_inputs", lambda *a: None)
    monkeypatch.setattr(polygraphy_api, "_set_io_precision", lambda *a: None)
    monkeypatch.setattr(polygraphy_api, "_adjust_config", lambda *a: None)
    monkeypatch.setattr(polygraphy_api, "keep_onnx_types", lambda *a: None)
    monkeypatch.setattr(polygraphy_api, "has_loops", lambda *a: False)
    with pytest.raises(StepError, match=r"TensorRT 8\.6\.0 could not build an engine from model\.onnx "
                                        r"\(--precision-recipe rewrite\): TensorRT logged no error"):
        _failing_backend("build").build(_job("fp16", recipe="rewrite"))

    def logs_then_fails(*args, **kwargs):   # as TensorRT's errors reach Polygraphy's logger, then its exception
        from polygraphy.logger import G_LOGGER
        G_LOGGER.error("10: [optimizer.cpp::computeCosts::3873] Error Code 10: Internal Error (Could not find any\n"
                       "implementation for node loop_1.)")
        G_LOGGER.error("Invalid Engine. Please ensure the engine was built correctly")
        raise RuntimeError("Invalid Engine. Please ensure the engine was built correctly")
    backend = _failing_backend("build")
    backend.api.engine_bytes_from_network = logs_then_fails
    with pytest.raises(StepError, match=r"\(--precision-recipe rewrite\): 10: \[optimizer\.cpp::computeCosts::3873\] "
                                        r"Error Code 10: Internal Error \(Could not find any implementation for "
                                        r"node loop_1\.\)$"):
        backend.build(_job("fp16", recipe="rewrite"))


def test_the_engine_inspectors_layers_are_counted_by_their_output_type():
    """TensorRT's inspector names a tensor's type "Half" without an execution context, "Channel major FP16 format
    ..." with one, and "N/A" for a dynamic-shape engine without one, whose kernels' names give the types; its
    reformatting copies, Myelin's fused graphs and an engine built without layer details (names alone) count
    nothing."""
    from trtkit_steps.trt import polygraphy_api

    def layer(kind, datatype):
        return {"Name": kind, "LayerType": kind, "Outputs": [{"Format/Datatype": datatype}]}
    def unshaped(kernel):   # TensorRT 8.6's dynamic-shape engine without a context: its kernel names the types
        return dict(layer("CaskConvolution", "N/A due to dynamic shapes"), TacticName=kernel)
    layers = [layer("CaskConvolution", "Half"),
              layer("CaskConvolution", "Channel major FP16 format where channel % 8 == 0"),
              layer("Reformat", "Row major linear FP32 format"), layer("CaskPooling", "Int8"),
              layer("Softmax", "Float"), layer("Shape", "Int32"), layer("Myelin", "Float"), {"Name": "no outputs"},
              unshaped("sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize256x64x8_stage3_warpsize2x2x1_ffma_aligna4"),
              unshaped("sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32"),
              unshaped("sm80_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nhwc_tilesize128x128x16"),
              unshaped("sm50_xmma_pooling_tiled_FP32NCHW_kMAX_tP7_tQ8_tR3_tS3_tU2_tV2_tUnroll6_tThreads255")]
    assert polygraphy_api.count_layer_precisions(layers) == {"fp16": 2, "int8": 2, "fp32": 3}
    assert polygraphy_api.count_layer_precisions(["conv1 + relu", "pool"]) is None


class _Inspector:
    """TensorRT 8.6's engine inspector as it answered on an H100: JSON with raw control characters in layer names,
    and types only once an execution context has every input's shape."""
    execution_context = None

    def get_engine_information(self, _format):
        shaped = self.execution_context is not None and self.execution_context.shapes == {"x": (64, 3)}
        datatype = "Channel major FP16 format" if shaped else "N/A due to dynamic shapes"
        return '{"Layers": [{"Name": "conv\n+ relu", "LayerType": "CaskConvolution", ' \
               f'"Outputs": [{{"Format/Datatype": "{datatype}"}}]}}]}}'


class _Context:
    def __init__(self):
        self.shapes = {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = shape


class _Engine:
    num_io_tensors = 2

    def create_engine_inspector(self):
        return _Inspector()

    def create_execution_context(self):
        return _Context()

    def get_tensor_name(self, index):
        return ("x", "y")[index]

    def get_tensor_mode(self, name):
        return "input" if name == "x" else "output"

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 3), (64, 3), (1024, 3)]


def test_the_layer_census_reads_tensorrt_86s_inspector():
    """Every TensorRT 8.6 build failed after its engine was built (JSONDecodeError: invalid control character), and
    with that mended the census was empty: the inspector names no types for a dynamic-shape engine without shapes."""
    import types

    from trtkit_steps.trt import polygraphy_api
    backend = polygraphy_api.PolygraphyApi.__new__(polygraphy_api.PolygraphyApi)
    backend.trt = types.SimpleNamespace(LayerInformationFormat=types.SimpleNamespace(JSON="json"),
                                        TensorIOMode=types.SimpleNamespace(INPUT="input"))
    backend.load = lambda path: _Engine()
    assert backend.layer_precisions("model.plan") == {"fp16": 1}
