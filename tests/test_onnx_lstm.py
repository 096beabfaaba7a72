"""scripts/trtkit_steps/onnx_lstm.py: unrolled LSTMs compute what ONNX Runtime's LSTM computes, and LSTMs
that cannot be unrolled as the same model are kept, with the reason."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from trtkit_steps.onnx_lstm import MAX_STEPS, unroll_lstms  # noqa: E402

EMBED, HIDDEN = 5, 4


def lstm_model(steps=3, bias=True, initial_state=False, outputs=("Y", "Y_h", "Y_c"), consume_y=False,
               weights_as_inputs=False, **attributes):
    """X (steps, batch, EMBED) through one LSTM; the outputs asked for are graph outputs (Y through a Relu
    with consume_y)."""
    rng = np.random.default_rng(0)
    directions = 2 if attributes.get("direction") == "bidirectional" else 1
    tensors = {"W": rng.standard_normal((directions, 4 * HIDDEN, EMBED)),
               "R": rng.standard_normal((directions, 4 * HIDDEN, HIDDEN))}
    if bias:
        tensors["B"] = rng.standard_normal((directions, 8 * HIDDEN))
    steps_dim = steps if isinstance(steps, int) else "steps"
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps_dim, "batch", EMBED])]
    initializers = []
    for name, value in tensors.items():
        if weights_as_inputs:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
        else:
            initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
    if initial_state:
        graph_inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "batch", HIDDEN])
                         for name in ("h0", "c0")]
    lstm_inputs = ["X", "W", "R", "B" if bias else "", "", "h0" if initial_state else "", "c0" if initial_state else ""]
    lstm_outputs = [name if name in outputs else "" for name in ("Y", "Y_h", "Y_c")]
    nodes = [helper.make_node("LSTM", lstm_inputs, lstm_outputs, name="lstm", hidden_size=HIDDEN, **attributes)]
    shapes = {"Y": [steps_dim, directions, "batch", HIDDEN], "Y_h": [directions, "batch", HIDDEN],
              "Y_c": [directions, "batch", HIDDEN]}
    graph_outputs = []
    for name in outputs:
        shown = name
        if name == "Y" and consume_y:
            nodes.append(helper.make_node("Relu", ["Y"], ["Y_relu"], name="relu"))
            shown = "Y_relu"
        graph_outputs.append(helper.make_tensor_value_info(shown, TensorProto.FLOAT, shapes[name]))
    graph = helper.make_graph(nodes, "lstm", graph_inputs, graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run(model, feed):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def feed_for(model, steps, batch=3):
    rng = np.random.default_rng(1)
    names = [value.name for value in model.graph.input if value.name not in {t.name for t in model.graph.initializer}]
    shapes = {"X": (steps, batch, EMBED), "h0": (1, batch, HIDDEN), "c0": (1, batch, HIDDEN),
              "W": (1, 4 * HIDDEN, EMBED), "R": (1, 4 * HIDDEN, HIDDEN), "B": (1, 8 * HIDDEN)}
    return {name: rng.standard_normal(shapes[name]).astype(np.float32) for name in names}


def ops(model):
    return sorted({node.op_type for node in model.graph.node})


@pytest.mark.parametrize("case", [
    dict(),
    dict(bias=False, initial_state=True),
    dict(outputs=("Y_h",)),
    dict(outputs=("Y",), consume_y=True),
    dict(steps=1, outputs=("Y_h", "Y_c")),
    dict(steps=MAX_STEPS, outputs=("Y_h",)),
])
def test_an_unrolled_lstm_computes_what_the_lstm_node_does(case):
    model = lstm_model(**case)
    steps = case.get("steps", 3)
    feed = feed_for(model, steps)
    expected = run(model, feed)
    unrolled = lstm_model(**case)
    assert unroll_lstms(unrolled) == [("lstm", None)]
    onnx.checker.check_model(unrolled)
    assert "LSTM" not in ops(unrolled) and "Loop" not in ops(unrolled) and "Scan" not in ops(unrolled)
    assert {t.name for t in unrolled.graph.initializer}.isdisjoint({"W", "R", "B"})   # the node's own weights go
    for want, got in zip(expected, run(unrolled, feed)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case, why", [
    (dict(direction="reverse"), "not a forward LSTM"),
    (dict(direction="bidirectional"), "not a forward LSTM"),
    (dict(clip=1.0), "clip or coupled input and forget gates"),
    (dict(activations=["Sigmoid", "Relu", "Tanh"]), "other activations"),
    (dict(weights_as_inputs=True), "weights computed in the graph"),
    (dict(steps="dynamic"), "a sequence length not known before it runs"),
    (dict(steps=MAX_STEPS + 1), f"more than {MAX_STEPS} steps"),
])
def test_an_lstm_that_is_not_certainly_the_same_model_unrolled_is_kept(case, why):
    model = lstm_model(**case)
    before = model.SerializeToString()
    assert unroll_lstms(model) == [("lstm", why)]
    assert model.SerializeToString() == before


def test_a_model_without_lstms_is_left_alone():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph)
    before = model.SerializeToString()
    assert unroll_lstms(model) == [] and model.SerializeToString() == before

