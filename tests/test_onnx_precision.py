"""onnx_precision's FP16 rewrite on the host: which nodes stay FP32, and which Keras layers they are."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import STANDIN_ARGS
from onnx import TensorProto, helper, numpy_helper

from trtkit_steps import contract, event_shapes, onnx_precision
from trtkit_steps.errors import Unsupported
from trtkit_steps.storage import save_arrays


def _overflowing_model() -> onnx.ModelProto:
    """x -> model/hidden/MatMul -> model/big/MatMul (values past 65504) -> model/shrink/mul (x 1e-4) -> Relu__7
    (a node of the exporter's own, after no layer) -> model/head/MatMul -> y, named as tf2onnx names Keras models."""
    rng = np.random.RandomState(0)
    weights = {"w_hidden": rng.rand(16, 32).astype(np.float32), "w_big": np.full((32, 8), 2000, np.float32),
               "scale": np.array(1e-4, np.float32), "w_head": rng.rand(8, 4).astype(np.float32) * 1e-3}
    nodes = [helper.make_node("MatMul", ["x", "w_hidden"], ["h"], name="model/hidden/MatMul"),
             helper.make_node("MatMul", ["h", "w_big"], ["big"], name="model/big/MatMul"),
             helper.make_node("Mul", ["big", "scale"], ["small"], name="model/shrink/mul"),
             helper.make_node("Relu", ["small"], ["positive"], name="Relu__7"),
             helper.make_node("MatMul", ["positive", "w_head"], ["y"], name="model/head/MatMul")]
    graph = helper.make_graph(nodes, "overflow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
                              [numpy_helper.from_array(w, name) for name, w in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_nodes_past_the_float16_range_stay_fp32_and_are_named_by_layer(tmp_path):
    model = _overflowing_model()
    x = np.random.RandomState(1).rand(8, 16).astype(np.float32) * 10
    ranges = onnx_precision.value_ranges(model, {"x": x}, str(tmp_path))
    assert ranges["big"] > onnx_precision.FP16_MAX > ranges["small"]
    keep = onnx_precision.overflowing_nodes(model, ranges)
    assert keep == ["model/big/MatMul", "model/shrink/mul"], "the overflowing node and the one it feeds"
    assert onnx_precision.kept_layers(model, keep) == [{"layer": "big", "nodes": ["model/big/MatMul"]},
                                                        {"layer": "shrink", "nodes": ["model/shrink/mul"]}]
    assert onnx_precision.keras_layers(model)["Relu__7"] == "head", "an exporter's own node takes the next layer's"
    half = onnx_precision.to_fp16(_overflowing_model(), keep)
    onnx.checker.check_model(half)
    assert [i.type.tensor_type.elem_type for i in list(half.graph.input) + list(half.graph.output)] == \
        [TensorProto.FLOAT] * 2, "inputs and outputs stay float32"
    typed = {w.name: w.data_type for w in half.graph.initializer}
    assert typed["w_hidden"] == TensorProto.FLOAT16 and typed["w_big"] == TensorProto.FLOAT
    expected = _run(model, x)
    assert np.max(np.abs(_run(half, x) - expected)) < 1e-2 * np.max(np.abs(expected))


def test_a_weight_past_the_float16_range_keeps_its_node(tmp_path):
    model = _overflowing_model()
    model.graph.initializer[3].CopyFrom(numpy_helper.from_array(np.full((8, 4), 1e5, np.float32), "w_head"))
    assert "model/head/MatMul" in onnx_precision.overflowing_nodes(model, {"x": 1.0})


def test_the_step_writes_the_rewrite_and_says_what_it_kept(tmp_path, capsys):
    """main() as the pipeline runs it: model.fp16.onnx beside model.onnx, verified, with a precision event."""
    artifacts = tmp_path / contract.ARTIFACTS
    artifacts.mkdir()
    onnx.save(_overflowing_model(), str(artifacts / "model.onnx"))
    x = np.random.RandomState(1).rand(8, 16).astype(np.float32) * 10
    save_arrays(str(artifacts / contract.REFERENCE_INPUTS), {"x": x})
    save_arrays(str(artifacts / contract.REFERENCE_OUTPUTS), {"y": _run(_overflowing_model(), x)})
    plan = dict(contract.option_defaults(), model="/trtkit/model/m.h5", model_format="h5", trust_model=False,
                target="onnx", mode="build", bench=None, cache_dir="/trtkit/work/cache", precision="fp16")
    (tmp_path / contract.PLAN).write_text(json.dumps(plan))
    onnx_precision.main([str(tmp_path / contract.PLAN)])
    assert (artifacts / "model.fp16.onnx").is_file()
    events = [json.loads(line[len(contract.EVENT_PREFIX):]) for line in capsys.readouterr().out.splitlines()
              if line.startswith(contract.EVENT_PREFIX)]
    [precision] = [e for e in events if e["event"] == "precision"]
    assert event_shapes.check_event(precision) and [k["layer"] for k in precision["kept_fp32"]] == ["big", "shrink"]
    [verified] = [e for e in events if e["event"] == "verified"]
    assert verified["artifact"] == "model.fp16.onnx" and verified["passed"]


def test_the_rewrite_runs_after_the_onnx_is_verified_and_before_the_engine():
    plan = {"mode": "build", "bench": None, "model_format": "h5", "precision": "fp16"}
    assert contract.stages(dict(plan, target="onnx")) == ["keras_stage", "onnx_stage", "onnx_precision"]
    assert contract.stages(dict(plan, target="engine", precision="int8")) == \
        ["keras_stage", "onnx_stage", "onnx_precision", "engine"]
    assert contract.stages(dict(plan, target="frozen")) == ["keras_stage"], "a frozen graph has no ONNX to rewrite"
    assert contract.stages(dict(plan, target="engine", model_format="onnx")) == \
        ["onnx_import", "onnx_precision", "engine"]
    assert contract.stages(dict(plan, target="engine", model_format=contract.OUTPUT_FORMAT)) == ["engine"]


@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_fp16_onnx_of_a_model_that_overflows_keeps_the_layer_and_names_it(trtkit, models, tmp_path):
    """Through the real CLI on the stand-in: --target onnx --precision fp16 writes model.fp16.onnx beside
    model.onnx, verified against Keras, and names the Keras layers it kept FP32 in the manifest and report.md."""
    out = tmp_path / "out"
    result = trtkit("build", models / "fp16_overflow.h5", *STANDIN_ARGS, "--target", "onnx", "--precision", "fp16",
                    "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(result.stdout)
    assert [k["layer"] for k in manifest["precision"]["kept_fp32"]] == ["big", "shrink"]
    assert {"model.onnx", "model.fp16.onnx"} <= {a["name"] for a in manifest["artifacts"]}
    assert [v["artifact"] for v in manifest["verification"] if v["passed"]] == ["model.onnx", "model.fp16.onnx"]
    half = onnx.load(str(out / "model.fp16.onnx"))
    assert TensorProto.FLOAT16 in {w.data_type for w in half.graph.initializer}
    assert "big (1 nodes)" in (out / "report.md").read_text()
    assert "--precision" not in result.stderr, "precision shapes an onnx build now: no unused-option warning"


@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_int8_onnx_of_a_cnn_is_calibrated_on_calib_data_and_its_error_reported(trtkit, models, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, image=np.random.RandomState(0).rand(16, 32, 32, 3).astype(np.float32))
    out = tmp_path / "out"
    result = trtkit("build", models / "cnn_bn.h5", *STANDIN_ARGS, "--target", "onnx", "--precision", "int8",
                    "--calib-data", calib, "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(result.stdout)
    assert manifest["precision"]["library"] == "onnxruntime.quantization"
    [int8] = [v for v in manifest["verification"] if v["artifact"] == "model.int8.onnx"]
    assert int8["atol"] is None and 0 < int8["max_abs_err"] < 0.5, "reported, not gated"
    ops = {n.op_type for n in onnx.load(str(out / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    missing = trtkit("build", models / "cnn_bn.h5", *STANDIN_ARGS, "--target", "onnx", "--precision", "int8",
                     "--out", tmp_path / "none")
    assert missing.returncode != 0 and "--calib-data" in missing.stderr and not (tmp_path / "none").exists()


def test_the_fp16_tolerance_grows_with_the_outputs():
    assert onnx_precision._default_atol("fp16", {"y": np.array([0.5, -0.25])}) == 1e-2
    assert abs(onnx_precision._default_atol("fp16", {"y": np.array([0.5, -3.0])}) - 0.03) < 1e-12
    assert onnx_precision._default_atol("fp16", {"y": np.array([200.0]), "z": np.array([-1000.0])}) == 10.0
    assert onnx_precision._default_atol("int8", {"y": np.array([200.0])}) is None


def test_a_cast_to_float_of_a_shape_stays_loadable(tmp_path):
    """tf2onnx's LayerNorm casts a shape's product to float32; the converter typed that Cast's output float16 but
    left its 'to', so ONNX Runtime refused the Transformer encoder's rewrite (Type Error ... Cast)."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="model/ln/Shape"),
             helper.make_node("ReduceProd", ["shape"], ["count"], name="model/ln/ReduceProd", keepdims=0),
             helper.make_node("Cast", ["count"], ["n"], name="model/ln/Cast", to=TensorProto.FLOAT),
             helper.make_node("Div", ["x", "n"], ["y"], name="model/ln/truediv")]
    graph = helper.make_graph(nodes, "cast", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    half = onnx_precision.to_fp16(model, [])
    np.testing.assert_allclose(_run(half, x), x / 8, rtol=1e-3)


def test_a_model_with_a_loop_is_refused_naming_its_layer():
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])])
    loop = helper.make_node("Loop", ["", "cond"], [], name="model/lstm_1/while_loop", body=body)
    graph = helper.make_graph([loop], "loop", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])], [])
    with pytest.raises(Unsupported, match="from layer lstm_1"):
        onnx_precision.refuse_subgraphs(helper.make_model(graph))
