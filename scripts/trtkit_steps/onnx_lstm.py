"""LSTM nodes of a fixed sequence length, unrolled into MatMuls and pointwise ops (build --unroll-lstm).

TensorRT's ONNX parser turns an LSTM node into a loop whose body runs the input projection, the recurrent
MatMul and the gate arithmetic per time step. Unrolled, the input projection of every step is one MatMul
before the steps, and each step is a MatMul with the recurrent weights plus pointwise gate math. The
arithmetic is the LSTM's own (ONNX's gate order i, o, f, c; sigmoid, tanh, tanh), so the result is the same
model: the ONNX stage verifies it against Keras, as it does every export. On TensorRT 8.6 the unrolled
engine ran slower but closer to Keras at FP16 (docs/runtime.md), so it is asked for, not the default.

Only what is certainly the same model is unrolled: a forward LSTM with a known number of steps (at most
MAX_STEPS: every step is a dozen nodes), weights that are initializers, the default activations, and no
clip, coupled gates, peepholes or sequence lengths. Any other LSTM is kept as it is. Opset 13 or newer.
"""
import numpy as np

MAX_STEPS = 64
DEFAULT_ACTIVATIONS = [b"Sigmoid", b"Tanh", b"Tanh"]


def _attributes(node):
    from onnx import helper
    return dict((a.name, helper.get_attribute_value(a)) for a in node.attribute)


def _steps(graph, name):
    """The static length of the first axis of tensor `name`, else None."""
    for value in list(graph.value_info) + list(graph.input):
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None
    return None


def _why_kept(node, steps, initializers):
    """Why this LSTM node stays as it is; None when it can be unrolled."""
    attributes = _attributes(node)
    inputs = list(node.input) + [""] * (8 - len(node.input))
    checks = [
        (attributes.get("direction", b"forward") != b"forward", "not a forward LSTM"),
        (attributes.get("layout", 0) != 0, "batch-major layout"),
        (list(attributes.get("activations", DEFAULT_ACTIVATIONS)) != DEFAULT_ACTIVATIONS, "other activations"),
        ("clip" in attributes or attributes.get("input_forget", 0), "clip or coupled input and forget gates"),
        (bool(inputs[4] or inputs[7]), "sequence lengths or peepholes"),
        (not all(name in initializers for name in inputs[1:4] if name), "weights computed in the graph"),
        (steps is None, "a sequence length not known before it runs"),
        (steps is not None and steps > MAX_STEPS, "more than %d steps" % MAX_STEPS),
    ]
    return next((why for failed, why in checks if failed), None)


class _Builder:
    """New nodes and initializers, named after the LSTM node they replace."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.nodes = []
        self.initializers = []
        self._count = 0
        self._constants = set()

    def constant(self, label, array):
        """An initializer, made once per label."""
        from onnx import numpy_helper
        name = "%s/%s" % (self.prefix, label)
        if name not in self._constants:
            self._constants.add(name)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, output=None, **attributes):
        from onnx import helper
        self._count += 1
        name = "%s/%s_%d" % (self.prefix, op_type, self._count)
        output = output or name + ":0"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attributes))
        return output


def _unroll(node, steps, initializers, graph_outputs, consumed):
    """The nodes and initializers that compute node's outputs step by step."""
    from onnx import numpy_helper
    hidden = _attributes(node)["hidden_size"]
    inputs = list(node.input) + [""] * (8 - len(node.input))
    weights = numpy_helper.to_array(initializers[inputs[1]])[0]            # (4H, E), gates i, o, f, c
    recurrent = numpy_helper.to_array(initializers[inputs[2]])[0]          # (4H, H)
    build = _Builder(node.name or node.output[0])
    projected = build.op("MatMul", [inputs[0], build.constant("W_T", weights.T)])   # (S, B, 4H): every step's
    if inputs[3]:
        bias = numpy_helper.to_array(initializers[inputs[3]])[0]
        projected = build.op("Add", [projected, build.constant("bias", bias[:4 * hidden] + bias[4 * hidden:])])
    recurrent_t = build.constant("R_T", recurrent.T)
    bounds = [build.constant("at_%d" % i, np.array([i * hidden], np.int64)) for i in range(5)]
    axis_0, axis_2 = (build.constant("axis_%d" % axis, np.array([axis], np.int64)) for axis in (0, 2))

    def gate(gates, index, activation):
        return build.op(activation, [build.op("Slice", [gates, bounds[index], bounds[index + 1], axis_2])])

    h, c = inputs[5] or None, inputs[6] or None       # (1, B, H) each; absent: zeros, so their terms drop
    hs = []
    for step in range(steps):
        start, stop = (build.constant("step_%d" % i, np.array([i], np.int64)) for i in (step, step + 1))
        gates = build.op("Slice", [projected, start, stop, axis_0])
        if h is not None:
            gates = build.op("Add", [gates, build.op("MatMul", [h, recurrent_t])])
        i, o, f, g = (gate(gates, index, activation) for index, activation in
                      enumerate(["Sigmoid", "Sigmoid", "Sigmoid", "Tanh"]))
        kept = build.op("Mul", [i, g])
        c = kept if c is None else build.op("Add", [build.op("Mul", [f, c]), kept])
        h = build.op("Mul", [o, build.op("Tanh", [c])])
        hs.append(h)
    outputs = list(node.output) + [""] * (3 - len(node.output))
    wanted = [name for name in outputs if name and (name in consumed or name in graph_outputs)]
    if outputs[0] in wanted:   # Y: (S, 1, B, H)
        build.op("Concat", [build.op("Unsqueeze", [h_t, axis_0]) for h_t in hs], output=outputs[0], axis=0)
    for name, last in ((outputs[1], h), (outputs[2], c)):
        if name in wanted:
            build.op("Identity", [last], output=name)
    return build


def unroll_lstms(model):
    """Unroll model's LSTM nodes in place where that is certainly the same model (see the module docstring).

    Returns [(node name, None when unrolled, else why it was kept)]."""
    from onnx import shape_inference
    graph = model.graph
    if not any(node.op_type == "LSTM" for node in graph.node):
        return []
    inferred = shape_inference.infer_shapes(model).graph
    initializers = dict((tensor.name, tensor) for tensor in graph.initializer)
    graph_outputs = set(value.name for value in graph.output)
    consumed = set(name for node in graph.node for name in node.input)
    nodes, report = [], []
    for node in graph.node:
        if node.op_type != "LSTM":
            nodes.append(node)
            continue
        steps = _steps(inferred, node.input[0])
        why = _why_kept(node, steps, initializers)
        report.append((node.name, why))
        if why:
            nodes.append(node)
            continue
        build = _unroll(node, steps, initializers, graph_outputs, consumed)
        nodes.extend(build.nodes)
        graph.initializer.extend(build.initializers)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)   # the unrolled LSTMs' own weights
    return report


def _drop_unused_initializers(graph):
    """Initializers no node reads any more (and that are not graph inputs, whose default they are)."""
    used = set(name for node in graph.node for name in node.input) | set(value.name for value in graph.input)
    for tensor in [tensor for tensor in graph.initializer if tensor.name not in used]:
        graph.initializer.remove(tensor)
