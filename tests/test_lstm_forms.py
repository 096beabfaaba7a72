"""benchmarks/lstm_forms.py and kernel_census.py: the hoisted Scan forms of an LSTM compute what the LSTM node
computes (ONNX Runtime), and the census counts the last call's kernels."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import kernel_census  # noqa: E402  (benchmarks/, on pytest's pythonpath)
import lstm_forms  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

STEPS, EMBED, HIDDEN, BATCH = 4, 6, 5, 3


def origin_like():
    """X (batch, steps, embed) -> Transpose -> LSTM (initial states from graph inputs) -> its last step ->
    MatMul -> Sigmoid: the origin export's shape."""
    rng = np.random.default_rng(0)
    weights = {"W": rng.standard_normal((1, 4 * HIDDEN, EMBED)), "R": rng.standard_normal((1, 4 * HIDDEN, HIDDEN)),
               "B": rng.standard_normal((1, 8 * HIDDEN)), "D": rng.standard_normal((HIDDEN, 2)),
               "last": np.array([STEPS - 1]), "end": np.array([STEPS]), "axis0": np.array([0]),
               "axis1": np.array([1])}
    initializers = [numpy_helper.from_array(v.astype(np.int64 if v.dtype.kind == "i" else np.float32), k)
                    for k, v in weights.items()]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W", "R", "B", "", "h0", "c0"], ["Y", "", ""], hidden_size=HIDDEN),
             helper.make_node("Squeeze", ["Y", "axis1"], ["y"]),
             helper.make_node("Slice", ["y", "last", "end", "axis0"], ["y_last"]),
             helper.make_node("Squeeze", ["y_last", "axis0"], ["h_last"]),
             helper.make_node("MatMul", ["h_last", "D"], ["d"]),
             helper.make_node("Sigmoid", ["d"], ["out"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", STEPS, EMBED])]
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "batch", HIDDEN]) for name in ("h0", "c0")]
    graph = helper.make_graph(nodes, "origin_like", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, {name: numpy_helper.to_array(t) for name, t in zip(weights, initializers)}


@pytest.mark.parametrize("form", lstm_forms.FORMS)
def test_hoisted_forms_compute_the_lstm(form):
    model, weights = origin_like()
    hidden = weights["R"].shape[2]
    bias = weights["B"][0][:4 * hidden] + weights["B"][0][4 * hidden:]
    variant = lstm_forms.hoisted(model, form, weights["W"][0], weights["R"][0], bias)
    onnx.checker.check_model(variant)
    assert "LSTM" not in {node.op_type for node in variant.graph.node}
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((BATCH, STEPS, EMBED)).astype(np.float32),
            "h0": rng.standard_normal((1, BATCH, HIDDEN)).astype(np.float32),
            "c0": rng.standard_normal((1, BATCH, HIDDEN)).astype(np.float32)}
    want, got = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
                 for m in (model, variant))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dense_weights_are_the_matmuls_after_the_lstm():
    model, weights = origin_like()
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    found = lstm_forms.dense_weights(model.graph, initializers)
    assert len(found) == 1 and np.array_equal(found[0], weights["D"])


def test_census_counts_the_last_calls_kernels(tmp_path):
    rows = ['"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"']
    calls = [["setup", "gemv", "gate"], ["gemv", "gate"], ["gemv", "gate"]]   # a first call may launch more
    for number, name in enumerate(name for call in calls for name in call):
        rows.append('"%d","%s(int)","gpu__time_duration.sum","ns","1,500"' % (number, name))
    path = tmp_path / "k.csv"
    path.write_text("==PROF== noise\n" + "\n".join(rows) + "\n")
    assert kernel_census.kernels(str(path)) == [("gemv(int)", 1500.0), ("gate(int)", 1500.0)]
    table = kernel_census.table(str(path))
    assert "2 kernels in one call, 3.0 us" in table and "| 1 | `gemv` | 1.5 |" in table
