"""Deterministic names in an exported ONNX graph, so the same model gives the same bytes.

tf2onnx names what it generates from a process-wide counter (const_axes__45 in
one run, const_axes__47 in the next, also with PYTHONHASHSEED=0), and two
equivalent nodes can swap names. The graph itself is the same; only names
differ. So after export every name trtkit does not promise is replaced by one
that follows from the graph's structure: nodes and the tensors they make by
their position in the (topologically ordered) node list, after the Keras layer
their TensorFlow name comes from (MODEL/LAYER/..., so "big/MatMul_2": FP16
rewrites name the layers they keep FP32), initializers by the
order in which nodes first use them. The graph's inputs and outputs keep the
Keras names. Renaming changes no computation; the ONNX stage then verifies the
renamed model against Keras as before.

Graphs with subgraphs (Loop, If, Scan) are left as they are: their bodies
refer to outer names, and trtkit's exports of Keras models have none.
"""


def has_subgraphs(graph):
    return any(attribute.g.node or attribute.graphs for node in graph.node for attribute in node.attribute)


def keras_layer(name):
    """"LAYER/" of a TensorFlow op name MODEL/LAYER/...; "" for names of the exporter's own (Shape__44)."""
    parts = name.split("/")
    return parts[1] + "/" if len(parts) >= 3 else ""


def canonicalize(graph):
    """Rename the graph's nodes, intermediate tensors and initializers in place; False when it was left alone."""
    if has_subgraphs(graph):
        return False
    kept = set(value.name for value in list(graph.input) + list(graph.output))
    names = {}
    initializers = dict((tensor.name, tensor) for tensor in graph.initializer)
    order = []
    for index, node in enumerate(graph.node):
        node.name = "%s%s_%d" % (keras_layer(node.name), node.op_type, index)
        for name in node.input:
            if name in initializers and name not in names and name not in kept:
                names[name] = "init_%d" % len(order)
                order.append(name)
        for position, name in enumerate(node.output):
            if name and name not in kept:
                names[name] = "%s_%d:%d" % (node.op_type, index, position)
    unused = sorted(set(initializers) - set(order) - kept)
    for name in unused:
        names[name] = "init_%d" % len(order)
        order.append(name)
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    _reorder(graph.initializer, [initializers[name] for name in order] +
             [tensor for tensor in graph.initializer if tensor.name in kept], names)
    _reorder(graph.value_info, sorted(graph.value_info, key=lambda value: names.get(value.name, value.name)), names)
    return True


def _reorder(field, items, names):
    """Refill a repeated field with renamed copies of items, in the given order."""
    copies = []
    for item in items:
        copy = type(item)()
        copy.CopyFrom(item)
        copy.name = names.get(copy.name, copy.name)
        copies.append(copy)
    del field[:]
    field.extend(copies)
