"""The origin LSTM's export in other forms TensorRT could compile, for benchmarks/lstm_study.py (issue 9).

    python benchmarks/lstm_forms.py EXPORT OUT

EXPORT is a trtkit output folder of a model with one forward LSTM (initial states and bias given, as tf2onnx
writes them) whose last step feeds the rest (the origin LSTM: `run.sh export`), with model.onnx and its
reference. Needs onnx, onnxruntime and numpy (any host). Writes to OUT:
  node.onnx   the export as it is: TensorRT's parser makes the LSTM node a loop that projects each step's input
  scan.onnx   the input projection of every step hoisted into one MatMul; a Scan runs the recurrence
  scan-one-sigmoid.onnx   the same, with the cell gate's rows doubled so that one Sigmoid covers all four gates
              (tanh(x) = 2 sigmoid(2x) - 1)
  lstm-weights.npz   the LSTM's and the Dense layers' weights, for the study's RNNv2 network
and prints each form's largest error against the export's Keras reference under ONNX Runtime, one JSON line
each.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

FORMS = ("scan", "scan-one-sigmoid")


def lstm_parts(graph):
    """The LSTM node, the nodes from it to the first MatMul after it (they take its last step), and that MatMul."""
    nodes = list(graph.node)
    first = next(i for i, node in enumerate(nodes) if node.op_type == "LSTM")
    last = next(i for i in range(first, len(nodes)) if nodes[i].op_type == "MatMul")
    return nodes[first], nodes[first:last], nodes[last]


def step_body(form, recurrent_t, hidden):
    """A Scan's body: (h, c, this step's projected input) -> (h', c')."""
    nodes = []

    def op(op_type, inputs, **attributes):
        name = "step/%s_%d" % (op_type, len(nodes))
        nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name

    def value(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)

    gates = op("Add", [op("MatMul", ["h", "R_T"]), "x"])
    if form == "scan-one-sigmoid":
        gates = op("Sigmoid", [gates])
    nodes.append(helper.make_node("Split", [gates, "splits"], ["gate_i", "gate_o", "gate_f", "gate_c"], axis=1,
                                  name="step/Split"))
    if form == "scan-one-sigmoid":
        i, o, f = "gate_i", "gate_o", "gate_f"
        cell = op("Sub", [op("Mul", ["gate_c", "two"]), "one"])
    else:
        i, o, f = (op("Sigmoid", [gate]) for gate in ("gate_i", "gate_o", "gate_f"))
        cell = op("Tanh", ["gate_c"])
    c = op("Add", [op("Mul", [f, "c"]), op("Mul", [i, cell])])
    h = op("Mul", [o, op("Tanh", [c])])
    nodes += [helper.make_node("Identity", [h], ["h_next"]), helper.make_node("Identity", [c], ["c_next"])]
    inputs = [value("h"), value("c"), value("x")]
    outputs = [value("h_next"), value("c_next")]
    constants = [numpy_helper.from_array(np.ascontiguousarray(recurrent_t), "R_T"),
                 numpy_helper.from_array(np.array([hidden] * 4, np.int64), "splits")]
    if form == "scan-one-sigmoid":
        constants += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("two", 2), ("one", 1))]
    return helper.make_graph(nodes, "step", inputs, outputs, initializer=constants)


def hoisted(model, form, weights, recurrent, bias):
    """model with its LSTM (and the nodes that take its last step) replaced by a hoisted projection and a Scan."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    lstm, dropped, matmul = lstm_parts(graph)
    hidden = recurrent.shape[1]
    if form == "scan-one-sigmoid":
        weights, recurrent, bias = weights.copy(), recurrent.copy(), bias.copy()
        for array in (weights, recurrent, bias):
            array[3 * hidden:] *= 2
    last_step = matmul.input[0]
    new = [helper.make_node("MatMul", [lstm.input[0], "hoisted/W_T"], ["hoisted/xw"]),
           helper.make_node("Add", ["hoisted/xw", "hoisted/bias"], ["projected"]),
           helper.make_node("Squeeze", [lstm.input[5], "hoisted/axis_0"], ["hoisted/h0"]),
           helper.make_node("Squeeze", [lstm.input[6], "hoisted/axis_0"], ["hoisted/c0"])]
    new.append(helper.make_node("Scan", ["hoisted/h0", "hoisted/c0", "projected"], [last_step, "hoisted/c"],
                                num_scan_inputs=1, body=step_body(form, recurrent.T, hidden)))
    at = list(graph.node).index(lstm)
    kept = [node for node in graph.node if node not in dropped]
    del graph.node[:]
    graph.node.extend(kept[:at] + new + kept[at:])
    graph.initializer.extend([numpy_helper.from_array(np.ascontiguousarray(weights.T), "hoisted/W_T"),
                              numpy_helper.from_array(bias, "hoisted/bias"),
                              numpy_helper.from_array(np.array([0], np.int64), "hoisted/axis_0")])
    used = set(name for node in graph.node for name in node.input)
    for tensor in [tensor for tensor in graph.initializer if tensor.name not in used]:
        graph.initializer.remove(tensor)
    return out


def dense_weights(graph, initializers):
    """The MatMul weights after the LSTM, in order (the origin's Dense layers)."""
    _, _, first = lstm_parts(graph)
    nodes = list(graph.node)
    return [initializers[node.input[1]] for node in nodes[nodes.index(first):] if node.op_type == "MatMul"]


def main(argv):
    export, out = argv
    os.makedirs(out, exist_ok=True)
    model = onnx.load(os.path.join(export, "model.onnx"))
    initializers = dict((t.name, numpy_helper.to_array(t)) for t in model.graph.initializer)
    lstm, _, _ = lstm_parts(model.graph)
    weights, recurrent, both_biases = (initializers[name][0] for name in lstm.input[1:4])
    hidden = recurrent.shape[1]
    bias = both_biases[:4 * hidden] + both_biases[4 * hidden:]
    x = np.load(os.path.join(export, "reference-inputs.npz"))["a0"]
    expected = np.load(os.path.join(export, "reference-outputs.npz"))["a0"]
    shutil.copy(os.path.join(export, "model.onnx"), os.path.join(out, "node.onnx"))
    np.savez(os.path.join(out, "lstm-weights.npz"), W=weights, R=recurrent, B=both_biases,
             **dict(("D%d" % i, d) for i, d in enumerate(dense_weights(model.graph, initializers))))
    input_name = model.graph.input[0].name
    for form in ("node",) + FORMS:
        path = os.path.join(out, form + ".onnx")
        if form != "node":
            variant = hoisted(model, form, weights, recurrent, bias)
            onnx.checker.check_model(variant)
            onnx.save(variant, path)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = session.run(None, {input_name: x})[0]
        print(json.dumps({"form": form, "max_abs_err_vs_keras": float(np.max(np.abs(got - expected)))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
