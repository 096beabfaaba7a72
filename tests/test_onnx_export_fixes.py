"""The ONNX export's repairs and findings (scripts/trtkit_steps/onnx_export_fixes.py, keras_stage.cudnn_warnings)
and the route's record (the export and warning events, the report), without TensorFlow."""
import math
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from trtkit import report
from trtkit_steps import event_shapes, keras_stage
from trtkit_steps.onnx_export_fixes import (
    layer_of,
    loop_warnings,
    refusal,
    replace_erfc,
    unknown_operators,
)


def one_node_model(op_type, name="model/gelu/Gelu/Erfc"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    graph = helper.make_graph([helper.make_node(op_type, ["x"], ["y"], name=name)], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_erfc_becomes_one_minus_erf_with_the_same_values():
    """tf2onnx writes TensorFlow's Erfc (exact GELU) as it is; ONNX has no such operator."""
    model = one_node_model("Erfc")
    assert unknown_operators(model) == {"Erfc": ["model/gelu/Gelu/Erfc"]}
    assert replace_erfc(model.graph) == 1
    onnx.checker.check_model(model)
    x = np.linspace(-4, 4, 801).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(got - np.array([math.erfc(v) for v in x.astype(np.float64)])).max() < 1e-6
    assert unknown_operators(model) == {}


def test_operators_onnx_lacks_are_refused_naming_the_keras_layer():
    model = one_node_model("StatefulPartitionedCall", "convnext_1/stage_0_depthwise_conv_1/StatefulPartitionedCall")
    model.graph.node.append(helper.make_node("StatefulPartitionedCall", ["y"], ["z"], name="convnext_1/other/Call"))
    found = unknown_operators(model)
    assert refusal(found, {"stage_0_depthwise_conv": "Conv2D"}) == \
        "ONNX has no operator StatefulPartitionedCall, in layer 'stage_0_depthwise_conv' (Conv2D) and 1 more"
    assert refusal(found, {}) == "ONNX has no operator StatefulPartitionedCall, in node " \
        "'convnext_1/stage_0_depthwise_conv_1/StatefulPartitionedCall' and 1 more"


@pytest.mark.parametrize("node, layer", [
    ("functional_1/lstm_1/while_loop", "lstm"),                  # Keras 3 numbers its scopes
    ("functional_2_1/gru_1_1/while_loop", "gru_1"),
    ("model/gru_1/PartitionedCall/while_loop", "gru_1"),         # Keras 2: the scope is the layer's name
    ("model/bi/forward_lstm/while", "forward_lstm"),            # the innermost layer
    ("StatefulPartitionedCall/while", None),
])
def test_a_node_is_named_by_the_innermost_layer_scope(node, layer):
    layers = {"lstm": "LSTM", "gru_1": "GRU", "bi": "Bidirectional", "forward_lstm": "LSTM"}
    assert layer_of(node, layers) == layer


def test_a_recurrent_layer_that_became_a_loop_is_named_with_its_cost():
    model = one_node_model("Relu")
    model.graph.node.append(helper.make_node("Loop", [], [], name="functional_2_1/gru_1_1/while_loop"))
    model.graph.node.append(helper.make_node("LSTM", [], [], name="LSTM_9"))     # a real LSTM node: no warning
    [(layer, message)] = loop_warnings(model.graph, {"gru_1": "GRU"})
    assert layer == "gru_1"
    assert message.startswith("layer 'gru_1' (GRU) became an ONNX Loop: TensorRT runs it one time step at a time")
    assert "3.6 ms" in message and "0.35 ms as GRU nodes" in message and "\n" not in message


def _func_attr(name):
    return SimpleNamespace(func=SimpleNamespace(name=name), list=SimpleNamespace(func=[]))


def test_a_cudnn_rnn_op_is_named_by_the_layer_that_calls_its_function():
    """An LSTM saved on a GPU holds CudnnRNNV3 (keras-team/keras#21799), at the top or inside a function."""
    graph_def = SimpleNamespace(
        node=[SimpleNamespace(name="model/lstm/CudnnRNNV3", op="CudnnRNNV3", attr={}),
              SimpleNamespace(name="model/gru/PartitionedCall", op="PartitionedCall", attr={"f": _func_attr("gpu")})],
        library=SimpleNamespace(function=[SimpleNamespace(signature=SimpleNamespace(name="gpu"),
                                                          node_def=[SimpleNamespace(op="CudnnRNNV3")])]))
    warnings = keras_stage.cudnn_warnings(graph_def, {"lstm": "LSTM", "gru": "GRU"})
    assert [layer for layer, _ in warnings] == ["gru", "lstm"]
    assert warnings[1][1].startswith("layer 'lstm' holds a cuDNN RNN op (CudnnRNNV3")


@pytest.mark.parametrize("event, valid", [
    ({"route": "tf2onnx", "failed": [{"route": "keras-export", "error": "no"}]}, True),
    ({"route": "torch", "failed": []}, False),
    ({"route": "tf2onnx", "failed": [{"route": "keras-export"}]}, False),
    ({"route": "tf2onnx"}, False),
])
def test_the_export_event_names_a_known_route(event, valid):
    assert (event_shapes.check_event({**event, "event": "export"}) is not None) == valid


def test_the_report_names_the_route_and_why_the_first_one_failed():
    manifest = {"export": {"route": "tf2onnx", "failed": [{"route": "keras-export", "error": "3 inputs for 1"}]}}
    assert report.export_route(manifest["export"]) == "tf2onnx; keras-export failed first: 3 inputs for 1"
