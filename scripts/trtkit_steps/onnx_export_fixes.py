"""What an exported ONNX graph needs before it is kept, and what it says about the Keras model's layers.

- Erfc: TensorFlow's exact GELU (tf.nn.gelu, Keras' 'gelu' activation) is x/2 * erfc(-x/sqrt(2)), and tf2onnx
  writes TensorFlow's Erfc as it is; ONNX has Erf only. erfc(x) = 1 - erf(x) is the same function; in float32
  the GELU it gives differs from TensorFlow's by at most 9.5e-7 over [-12, 12] (measured in the stand-in image).
- Operators ONNX does not have (what tf2onnx could not convert) are named with the Keras layer they came from.
- Recurrent layers that became a Loop or Scan (a masked LSTM, Keras 3's GRU, a SimpleRNN) are named, with
  what that costs on TensorRT.

Layers are found from the node names tf2onnx keeps from TensorFlow's name scopes ('functional_1/lstm_1/
while_loop'), so these run before onnx_names.canonicalize renames the nodes.
"""
import re

LOOP_OPS = ("Loop", "Scan")
_NUMBERED = re.compile(r"^(.*)_\d+$")
# Measured on an H100 with TensorRT 8.6 (docs/gpu-proof.md, twelfth session): one two-layer GRU model as
# GRU nodes (tf2onnx) and as Loops (Keras 3's export), FP16 engines, trtkit bench.
LOOP_COST = ("TensorRT runs it one time step at a time: the same two-layer GRU model took 3.6 ms a batch of 1 "
             "as Loops against 0.35 ms as GRU nodes on an H100 (TensorRT 8.6, about 10x; docs/gpu-proof.md); "
             "tf2onnx exports unmasked Keras 2 GRU/LSTM layers as those nodes")


def replace_erfc(graph):
    """Every Erfc node in place by 1 - Erf (same outputs); the number replaced."""
    import numpy as np
    from onnx import helper, numpy_helper
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "Erfc" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        count += 1
        one = "%s/one" % node.name
        graph.initializer.append(numpy_helper.from_array(np.array(1, np.float32), one))
        erf = "%s/erf:0" % node.name
        nodes.append(helper.make_node("Erf", [node.input[0]], [erf], name="%s/erf" % node.name))
        nodes.append(helper.make_node("Sub", [one, erf], [node.output[0]], name="%s/one_minus_erf" % node.name))
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def layer_of(node_name, layers):
    """The Keras layer whose name scope holds the node: the innermost scope named after one of layers (Keras 3
    numbers its scopes: layer 'gru_1' runs in 'gru_1_1'); None when no scope is a layer's."""
    for scope in reversed(node_name.split("/")):
        if scope in layers:
            return scope
        numbered = _NUMBERED.match(scope)
        if numbered and numbered.group(1) in layers:
            return numbered.group(1)
    return None


def _described(node_name, layers):
    layer = layer_of(node_name, layers)
    if layer is None:
        return "node '%s'" % node_name
    return "layer '%s' (%s)" % (layer, layers[layer]) if layers[layer] else "layer '%s'" % layer


def unknown_operators(model):
    """{op type: [node names]} of the default domain's operators that ONNX does not have at the model's opset."""
    from onnx import defs
    opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [defs.onnx_opset_version()])
    found = {}
    for node in model.graph.node:
        if node.domain in ("", "ai.onnx") and not _has_schema(defs, node.op_type, opset):
            found.setdefault(node.op_type, []).append(node.name)
    return found


def _has_schema(defs, op_type, opset):
    try:
        defs.get_schema(op_type, opset)
    except Exception:  # onnx raises its own SchemaError type per version
        return False
    return True


def refusal(found, layers):
    """One line naming each operator ONNX lacks and the first layer that needs it."""
    parts = []
    for op_type in sorted(found):
        nodes = found[op_type]
        more = " and %d more" % (len(nodes) - 1) if len(nodes) > 1 else ""
        parts.append("%s, in %s%s" % (op_type, _described(nodes[0], layers), more))
    return "ONNX has no operator %s" % "; ".join(parts)


def loop_warnings(graph, layers):
    """One warning per Loop or Scan node: (layer or None, message)."""
    warnings = []
    for node in graph.node:
        if node.op_type in LOOP_OPS:
            warnings.append((layer_of(node.name, layers), "%s became an ONNX %s: %s" % (
                _described(node.name, layers), node.op_type, LOOP_COST)))
    return warnings
