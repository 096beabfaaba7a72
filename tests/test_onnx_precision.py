"""onnx_precision's FP16 rewrite on the host: which nodes stay FP32, and which Keras layers they are."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import STANDIN_ARGS
from onnx import TensorProto, helper, numpy_helper

from trtkit_steps import contract, event_shapes, onnx_precision
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
    assert onnx_precision.kept_layers(model, keep, "past") == [
        {"layer": "big", "nodes": ["model/big/MatMul"], "why": "past"},
        {"layer": "shrink", "nodes": ["model/shrink/mul"], "why": "past"}]
    assert onnx_precision.keras_layers(model)["Relu__7"] == "head", "an exporter's own node takes the next layer's"
    half = onnx_precision.to_fp16(_overflowing_model(), keep)
    onnx.checker.check_model(half)
    assert [i.type.tensor_type.elem_type for i in list(half.graph.input) + list(half.graph.output)] == \
        [TensorProto.FLOAT] * 2, "inputs and outputs stay float32"
    typed = {w.name: w.data_type for w in half.graph.initializer}
    assert typed["w_hidden"] == TensorProto.FLOAT16 and typed["w_big"] == TensorProto.FLOAT
    expected = _run(model, x)
    assert np.max(np.abs(_run(half, x) - expected)) < 1e-2 * np.max(np.abs(expected))


@pytest.mark.parametrize("cast_layer", ["CAST", "IDENTITY"])
def test_tensorrt_8_is_asked_for_fp32_exactly_where_the_rewrite_kept_it(cast_layer):
    """The rewrite's casts, parsed as TensorRT 8's parser makes them (a cast layer from 8.6 on, an identity before),
    are what keep_onnx_types follows: the kept nodes are asked for FP32, every other node of the model FP16."""
    from trt_network import F16, F32, parsed, tensorrt

    from trtkit_steps.trt.polygraphy_api import keep_onnx_types
    keep = ["model/big/MatMul", "model/shrink/mul"]
    half = onnx_precision.to_fp16(_overflowing_model(), keep)
    network = parsed(half, cast_layer)
    keep_onnx_types(tensorrt(cast_layer), network)
    asked = dict((layer.name, layer.precision) for layer in network.layers)
    assert asked == dict([(name, F32) for name in keep] + [
        (name, F16) for name in ("model/hidden/MatMul", "Relu__7", "model/head/MatMul")] + [
        (node.name, None) for node in half.graph.node if node.op_type == "Cast"])


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
    assert "big (1 nodes: values past 65504)" in (out / "report.md").read_text()
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


def _loop_model() -> onnx.ModelProto:
    """h = x @ w (model/dense); then three steps of s = tanh(s @ w + h) in a Loop (model/lstm_1) whose body reads w
    and h from outside, as Keras 3's LSTM reads its weights and sequence; y = s."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="model/lstm_1/while/Identity"),
         helper.make_node("MatMul", ["s_in", "w"], ["sw"], name="model/lstm_1/while/MatMul"),
         helper.make_node("Add", ["sw", "h"], ["pre"], name="model/lstm_1/while/add"),
         helper.make_node("Tanh", ["pre"], ["s_out"], name="model/lstm_1/while/Tanh")], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [None, 4])])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="model/dense/MatMul"),
             helper.make_node("Loop", ["steps", "", "x"], ["y"], name="model/lstm_1/while_loop", body=body)]
    weights = [numpy_helper.from_array(np.random.RandomState(2).rand(4, 4).astype(np.float32) / 4, "w"),
               numpy_helper.from_array(np.array(3, np.int64), "steps")]
    graph = helper.make_graph(nodes, "loop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_loop_runs_fp32_whole_and_the_weights_and_values_it_reads_from_outside_reach_it_fp32():
    """onnxconverter-common turned w and h float16 for model/dense but left the kept Loop's body reading them:
    ONNX Runtime refused the masked LSTM's rewrite (MatMul bound to float16 and float)."""
    model, x = _loop_model(), np.random.RandomState(3).rand(5, 4).astype(np.float32)
    w = numpy_helper.to_array(model.graph.initializer[0])
    expected, h = x, x @ w
    for _ in range(3):
        expected = np.tanh(expected @ w + h)
    looping = onnx_precision.looping_nodes(model)
    assert onnx_precision.kept_layers(model, looping, "loop") == [
        {"layer": "lstm_1", "nodes": ["model/lstm_1/while_loop"], "why": "loop"}]
    half = onnx_precision.to_fp16(model, looping)
    types = {w.name: w.data_type for w in half.graph.initializer}
    assert types["w"] == TensorProto.FLOAT16 and types["w__fp32"] == TensorProto.FLOAT
    assert sorted(types) == ["steps", "w", "w__fp32"], "no weight is left that nothing reads"
    np.testing.assert_allclose(_run(half, x), expected, atol=2e-3)


def test_the_smallest_keep_is_the_shortest_head_of_the_order_that_fits_in_few_conversions():
    order = [f"n{i}" for i in range(100)]
    calls = []

    def fits(keep):
        calls.append(len(keep))
        return {"n3", "n41"} <= set(keep)
    assert onnx_precision.smallest_keep(fits, order) == order[:42]
    assert len(calls) <= 2 * 7 + 1
    assert onnx_precision.smallest_keep(lambda keep: True, order) == []
    assert onnx_precision.smallest_keep(lambda keep: False, order) is None


def _saturated_softmax_model() -> onnx.ModelProto:
    """Logits near 5000, two of them 0.6 apart: float16 rounds both weights to 5000 (its spacing there is 4), and
    the Softmax's winner is lost, as EfficientNetB0's (random weights) was. Seven nodes before them (a model
    may keep a quarter of its nodes FP32)."""
    weights = numpy_helper.from_array(np.array([[5000.3, 5000.9, 4990.0]], np.float32), "w")
    prep = [helper.make_node("Relu", [f"x{i}"], [f"x{i + 1}"], name=f"model/prep/Relu_{i}") for i in range(6)]
    nodes = [helper.make_node("Identity", ["x"], ["x0"], name="model/prep/Identity"), *prep,
             helper.make_node("MatMul", ["x6", "w"], ["logits"], name="model/predictions/MatMul"),
             helper.make_node("Softmax", ["logits"], ["y"], name="model/predictions/Softmax", axis=-1)]
    graph = helper.make_graph(nodes, "softmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])], [weights])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _whole_fp16_fits(model, within, folder) -> bool:
    path = str(folder / "whole.fp16.onnx")
    onnx.save(onnx_precision.to_fp16(model, []), path)
    return within(path)


def test_a_rewrite_that_misses_the_tolerance_keeps_the_largest_values_fp32_until_it_fits(tmp_path):
    model, x = _saturated_softmax_model(), np.ones((2, 1), np.float32)
    expected = _run(model, x)
    artifacts = tmp_path / contract.ARTIFACTS
    artifacts.mkdir()
    onnx.save(model, str(artifacts / "model.onnx"))

    def within(path):
        return float(np.max(np.abs(_run(onnx.load(path), x) - expected))) <= 1e-2
    assert not _whole_fp16_fits(model, within, tmp_path), "the whole-FP16 model misses the tolerance"
    library, kept = onnx_precision.rewrite({"precision": "fp16"}, str(tmp_path), {"x": x}, within)
    assert [k["layer"] for k in kept] == ["predictions"] and "bisection" in kept[0]["why"]
    assert within(str(artifacts / "model.fp16.onnx")), "the model written is the one that fits"


def test_a_model_that_needs_more_than_a_quarter_of_its_nodes_fp32_is_left_to_the_gate(tmp_path, capsys):
    model, x = _saturated_softmax_model(), np.ones((2, 1), np.float32)
    del model.graph.node[1:7]   # three nodes: a quarter of them is none
    model.graph.node[1].input[0] = "x0"
    expected = _run(model, x)
    (tmp_path / contract.ARTIFACTS).mkdir()
    onnx.save(model, str(tmp_path / contract.ARTIFACTS / "model.onnx"))

    def within(path):
        return float(np.max(np.abs(_run(onnx.load(path), x) - expected))) <= 1e-2
    assert onnx_precision.rewrite({"precision": "fp16"}, str(tmp_path), {"x": x}, within)[1] == []
    assert "not one for FP16" in capsys.readouterr().out
    assert not within(str(tmp_path / contract.ARTIFACTS / "model.fp16.onnx")), "the FP16 model, for the gate"


def test_int8_is_qdq_as_tensorrt_reads_it(tmp_path):
    """TensorRT 8.6 refused onnxruntime's defaults on the H100: asymmetric activations ("Could not parse ONNX
    correctly"), INT8 weights into a lone DequantizeLinear, INT32 biases."""
    rng = np.random.RandomState(4)
    weights = [numpy_helper.from_array(rng.rand(8, 4).astype(np.float32) - 0.3, "w"),
               numpy_helper.from_array(rng.rand(4).astype(np.float32), "b"),
               numpy_helper.from_array(rng.rand(8, 4).astype(np.float32) - 0.3, "w2"),
               numpy_helper.from_array(np.full(4, 1e-3, np.float32), "eps")]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="model/dense/Gemm"),   # x has two readers
             helper.make_node("MatMul", ["x", "w2"], ["g"], name="model/skip/MatMul"),
             helper.make_node("Add", ["h", "g"], ["s"], name="model/add"),                # residual: two activations
             helper.make_node("Relu", ["s"], ["r"], name="model/dense/Relu"),
             helper.make_node("Add", ["r", "eps"], ["y"], name="model/norm/add_eps")]     # of a constant
    graph = helper.make_graph(nodes, "int8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], weights)
    source, dest = tmp_path / "model.onnx", tmp_path / "model.int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    onnx_precision.to_int8(str(source), str(dest), {"x": rng.rand(16, 8).astype(np.float32) + 0.5})
    model = onnx.load(str(dest))
    points = [numpy_helper.to_array(w) for w in model.graph.initializer if "zero_point" in w.name]
    assert points and all(not p.any() for p in points)
    assert "Relu" in {n.op_type for n in model.graph.node}, "symmetric activations keep their Relu"
    stored = {w.name: w.data_type for w in model.graph.initializer if "zero_point" not in w.name}
    assert stored["w"] == stored["b"] == TensorProto.FLOAT, "weights and biases stay float"
    quantized = {n.input[0]: n for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert "w" in quantized and "b" not in quantized, "the weight has its own Q/DQ pair, the bias none"
    dequantized = [n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"]
    outputs = [o.name for o in model.graph.output]
    readers = [sum(name in n.input for n in model.graph.node) + outputs.count(name) for name in dequantized]
    assert readers == [1] * len(dequantized), "a Q/DQ pair per reader: TensorRT cannot share one"
    read_dequantized = {n.name: [i for i in n.input if i in dequantized] for n in model.graph.node}
    assert [len(read_dequantized[name]) for name in ("model/dense/Gemm", "model/skip/MatMul", "model/add")] == \
        [2, 2, 2], "the inputs of weighted ops and of a residual Add are quantized"
    assert read_dequantized["model/dense/Relu"] == read_dequantized["model/norm/add_eps"] == [], \
        "no Q/DQ on outputs, nor on an Add of a constant: TensorRT fuses those into the op before"
