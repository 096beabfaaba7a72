"""LSTM nodes of an ONNX export, made simpler for TensorRT without changing what they compute.

last_step_from_y_h: tf2onnx takes a Keras LSTM's result (return_sequences=False) as the last step of the
node's Y output, every step's hidden state, though the node also gives that state alone as Y_h. TensorRT's
parser builds each output the graph uses into its loop; the last step is read from Y_h instead, so Y can go.

unroll_lstms (build --unroll-lstm): TensorRT's ONNX parser turns an LSTM node into a loop whose body runs
the input projection, the recurrent MatMul and the gate arithmetic per time step. Unrolled, the input
projection of every step is one MatMul before the steps, and each step is a MatMul with the recurrent
weights plus pointwise gate math. The arithmetic is the LSTM's own (ONNX's gate order i, o, f, c; sigmoid,
tanh, tanh), so the result is the same model: the ONNX stage verifies it against Keras, as it does every
export. Only what is certainly the same model is unrolled: a forward LSTM with a known number of steps (at
most MAX_STEPS: every step is a dozen nodes), weights that are initializers, the default activations, and
no clip, coupled gates, peepholes or sequence lengths. Any other LSTM is kept as it is.

Both need opset 13 or newer (axes as inputs), which is all trtkit exports.
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


INT_MAX = 2 ** 31 - 1


def _constant(initializers, name):
    from onnx import numpy_helper
    return numpy_helper.to_array(initializers[name]).tolist() if name in initializers else None


def _only_consumer(graph, tensor):
    found = [node for node in graph.node if tensor in node.input]
    return found[0] if len(found) == 1 and tensor not in set(value.name for value in graph.output) else None


def _last_step_of(graph, lstm, initializers):
    """(squeeze, slice) when Y of a forward, one-direction lstm feeds only Squeeze(axis 1) -> Slice(the last
    step on axis 0), else None."""
    attributes = _attributes(lstm)
    if (attributes.get("direction", b"forward") != b"forward" or attributes.get("layout", 0) != 0
            or (len(lstm.input) > 4 and lstm.input[4]) or not lstm.output[0]):
        return None
    squeeze = _only_consumer(graph, lstm.output[0])
    if squeeze is None or squeeze.op_type != "Squeeze" or len(squeeze.input) != 2 \
            or _constant(initializers, squeeze.input[1]) != [1]:
        return None
    last = _only_consumer(graph, squeeze.output[0])
    if last is None or last.op_type != "Slice" or last.input[0] != squeeze.output[0] \
            or last.output[0] in set(value.name for value in graph.output):   # the graph's names stay
        return None
    bounds = [_constant(initializers, name) if name else None for name in (list(last.input) + [""] * 5)[1:5]]
    starts, ends, axes, steps = bounds
    if starts != [-1] or ends is None or ends[0] < INT_MAX or axes not in (None, [0]) or steps not in (None, [1]):
        return None
    return squeeze, last


def last_step_from_y_h(model):
    """Where a forward LSTM's Y is only squeezed and sliced to its last step, read that step from Y_h instead
    and drop Y. Returns the names of the LSTM nodes changed."""
    graph = model.graph
    initializers = dict((tensor.name, tensor) for tensor in graph.initializer)
    changed, dropped = [], []
    for lstm in [node for node in graph.node if node.op_type == "LSTM"]:
        found = _last_step_of(graph, lstm, initializers)
        if found is None:
            continue
        squeeze, last = found
        while len(lstm.output) < 2:
            lstm.output.append("")
        if not lstm.output[1]:
            lstm.output[1] = (lstm.name or lstm.output[0]) + "/Y_h"
        for node in graph.node:     # the last step, (1, batch, hidden), is Y_h itself
            node.input[:] = [lstm.output[1] if name == last.output[0] else name for name in node.input]
        # Y keeps its name, unread: TensorRT 8.6's parser cannot parse an LSTM whose Y is left out ("").
        dropped += [squeeze, last]
        changed.append(lstm.name)
    for node in dropped:
        graph.node.remove(node)
    _drop_unused_initializers(graph)
    return changed


def _drop_unused_initializers(graph):
    """Initializers no node reads any more (and that are not graph inputs, whose default they are)."""
    used = set(name for node in graph.node for name in node.input) | set(value.name for value in graph.input)
    for tensor in [tensor for tensor in graph.initializer if tensor.name not in used]:
        graph.initializer.remove(tensor)
