"""Reduced precision written into the ONNX model, the way TensorRT 10 and 11 take it (strongly typed networks).

    python3 -m trtkit_steps.onnx_precision PLAN.json

--precision fp16: onnxconverter-common's float16 conversion with float32 inputs and outputs. Nodes whose values
(measured on the FP32 model with the reference inputs) or weights reach past float16's largest finite number stay
FP32, and so do Loop, Scan and If nodes (a masked LSTM, Keras 3's GRU). When the model then misses the tolerance,
the nodes that read or make the largest values stay FP32 too, as few as bisection against the Keras reference
finds. Each kept node is named by the Keras layer it comes from. ONNX Runtime cannot show the overflow itself:
its CPU provider runs float16 nodes in float32 and drops the casts between them, so the ranges are read from the
FP32 model.
--precision int8: onnxruntime.quantization's static Q/DQ quantization, calibrated on --calib-data.
Either way the new model is verified against Keras with ONNX Runtime before TensorRT sees it.
"""
import os

import numpy as np

from trtkit_steps import contract
from trtkit_steps.comparison import compare, gate, tolerance, verdict
from trtkit_steps.events import emit, log, run_main, step
from trtkit_steps.onnx_stage import ort_session, run_session
from trtkit_steps.storage import load_reference, read_json
from trtkit_steps.trt.calibration import int8_calibration_data
from trtkit_steps.trt.settings import default_atol

FP16_MAX = 65504.0
MOST_KEPT_SHARE = 4   # bisection keeps at most 1/4 of the nodes FP32: past that, the model is not an FP16 model
_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16
_SUBGRAPH_OPS = ("Loop", "Scan", "If")
_FP32_SUFFIX = "__fp32"


def value_ranges(model, inputs, work):
    """{tensor name: largest |value|} of every float tensor the nodes make, on the reference inputs: a copy of the
    model lists them all as outputs (which also keeps ONNX Runtime from fusing them away)."""
    import onnx
    probe = onnx.shape_inference.infer_shapes(model)
    floats = set(v.name for v in list(probe.graph.value_info) + list(probe.graph.output)
                 if v.type.tensor_type.elem_type == _FLOAT)
    listed = set(o.name for o in probe.graph.output)
    for node in probe.graph.node:
        for name in node.output:
            if name in floats and name not in listed:
                probe.graph.output.append(onnx.helper.make_tensor_value_info(name, _FLOAT, None))
                listed.add(name)
    arrays = dict((name, v) for name, v in run_session(ort_session_of(probe, work), inputs).items() if name in floats)
    arrays.update(inputs)
    return dict((name, float(np.max(np.abs(v))) if v.size else 0.0) for name, v in arrays.items())


def ort_session_of(model, work):
    """An ONNX Runtime session of an in-memory model, saved in the work folder (not /tmp, a small tmpfs)."""
    import onnx
    path = os.path.join(work, "ranges.onnx")
    onnx.save(model, path)
    return ort_session(path)


def overflowing_nodes(model, ranges):
    """Nodes that must stay FP32: a float input, output or weight of theirs reaches past FP16_MAX (inf or NaN
    included). A node fed such a value is kept too, or the cast into float16 before it would overflow."""
    from onnx import numpy_helper
    weights = dict((w.name, numpy_helper.to_array(w)) for w in model.graph.initializer)
    big = set(name for name, value in ranges.items() if not value < FP16_MAX)
    big.update(name for name, w in weights.items() if w.dtype == np.float32 and w.size and
               not np.max(np.abs(w)) < FP16_MAX)
    return [node.name for node in model.graph.node if big.intersection(list(node.input) + list(node.output))]


def keras_layers(model):
    """{node name: the Keras layer it comes from}. Exporters name nodes MODEL/LAYER/OP; a node of their own
    (tf2onnx's Shape__44) takes the layer of the first node downstream, else upstream, that has one."""
    own = dict((n.name, n.name.split("/")[-2]) for n in model.graph.node if n.name.count("/") >= 1)
    consumers, producers = {}, {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producers[name] = node
    layers = {}
    for node in model.graph.node:
        layers[node.name] = own.get(node.name) or _nearest_layer(node, own, consumers, producers)
    return layers


def _nearest_layer(node, own, consumers, producers):
    for neighbours in (lambda n: [c for o in n.output for c in consumers.get(o, [])],
                       lambda n: [producers[i] for i in n.input if i in producers]):
        seen, frontier = set(), [node]
        while frontier:
            frontier = [n for current in frontier for n in neighbours(current) if n.name not in seen]
            seen.update(n.name for n in frontier)
            named = [own[n.name] for n in frontier if n.name in own]
            if named:
                return named[0]
    return node.name


def kept_layers(model, nodes, why):
    """[{"layer", "nodes", "why"}] for the nodes kept FP32, one entry per Keras layer, in graph order."""
    layers, grouped = keras_layers(model), {}
    for name in nodes:
        grouped.setdefault(layers[name], []).append(name)
    return [{"layer": layer, "nodes": names, "why": why} for layer, names in grouped.items()]


def looping_nodes(model):
    """Loop, Scan and If nodes (a Keras LSTM with a mask, a GRU of Keras 3, a Cropping of unknown size) and the
    other nodes of their Keras layers: they run FP32 as a whole. onnxconverter-common would convert the bodies but
    not what they read from outside, and Keras 3's LSTM runs its first step outside its Loop, on the same weights
    (kept FP32 with the layer, they are not stored twice)."""
    layers = keras_layers(model)
    looping = set(layers[node.name] for node in model.graph.node if node.op_type in _SUBGRAPH_OPS)
    return [node.name for node in model.graph.node if layers[node.name] in looping]


def to_fp16(model, keep):
    """The float16 model, keep's nodes FP32. Casts to float32 (of shapes, in tf2onnx's LayerNorm) are left to run
    as they are, a cast into float16 after them: the converter types their outputs float16 but leaves their 'to'
    at float32, a model ONNX Runtime refuses."""
    from onnxconverter_common import float16
    del model.graph.value_info[:]   # the same mismatch, for the Casts tf2onnx typed
    casts = [node.name for node in model.graph.node if node.op_type == "Cast" and
             any(a.name == "to" and a.i == _FLOAT for a in node.attribute)]
    blocked = set(keep) | set(casts)
    weights = _split_shared_weights(model.graph, blocked)
    made_by = dict((name, (node.name, k)) for node in model.graph.node for k, name in enumerate(node.output))
    # max_finite_val: weights clip at float16's own limit, not the library's default 1e4
    half = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=sorted(blocked),
                                            max_finite_val=FP16_MAX)
    _feed_bodies_fp32(half, weights, made_by)
    _drop_unread_weights(half.graph)
    return half


def _drop_unread_weights(graph):
    """The float16 weights whose readers all took FP32 copies: read by nobody, they would only add to the file."""
    read = _read_names(graph) | set(o.name for o in graph.output)
    unread = [w for w in graph.initializer if w.name not in read]
    for weight in unread:
        graph.initializer.remove(weight)


def _split_shared_weights(graph, blocked):
    """A weight read by a kept node and by a converted one gets an FP32 copy for the kept ones (Keras 3's LSTM
    runs its first step outside its Loop with the Loop's weights); the converter keeps such a weight FP32 for
    both, a type mismatch. Returns {name: FP32 weight} of the float weights kept nodes and bodies read, for
    _feed_bodies_fp32."""
    read_kept = set(name for node in graph.node if node.name in blocked for name in node.input)
    read_kept.update(*[_outer_names(body) for node in graph.node if node.op_type in _SUBGRAPH_OPS
                       for body in _subgraphs(node)])
    # copies of those only: the converter rewrites the weights in place, and this runs once per bisection step
    weights = dict((w.name, _clone(w)) for w in graph.initializer if w.data_type == _FLOAT and w.name in read_kept)
    converted = set(name for node in graph.node if node.name not in blocked for name in node.input)
    for node in graph.node:
        if node.name in blocked:
            for k, name in enumerate(node.input):
                if name in weights and name in converted:
                    node.input[k] = _fp32_copy(graph, weights[name])
    return weights


def _feed_bodies_fp32(model, weights, made_by):
    """A kept Loop/Scan/If body reads outer values by name, which the converter does not see. It renames a kept
    node's outputs (a Cast into float16 takes the old name) and removes such Casts where a kept node reads them,
    so each outer value is found again by its producer (made_by: {name: (node, output index)}, before the
    conversion); one the converter turned float16 reaches the body as FP32: a weight as its FP32 copy, an
    activation through a Cast before the node."""
    from onnx import helper
    half = set(v.name for v in list(model.graph.value_info) + list(model.graph.input)
               if v.type.tensor_type.elem_type == _FLOAT16)
    half.update(w.name for w in model.graph.initializer if w.data_type == _FLOAT16)
    nodes = dict((n.name, n) for n in model.graph.node)
    for node in [n for n in model.graph.node if n.op_type in _SUBGRAPH_OPS]:
        bodies = list(_subgraphs(node))
        for name in sorted(set().union(*[_outer_names(body) for body in bodies])):
            producer, index = made_by.get(name, (None, 0))
            now = nodes[producer].output[index] if producer in nodes else name
            if name in weights and name in half:
                now = _fp32_copy(model.graph, weights[name])
            elif now in half:
                cast = now + _FP32_SUFFIX
                if cast not in nodes:
                    at = list(model.graph.node).index(node)
                    nodes[cast] = helper.make_node("Cast", [now], [cast], to=_FLOAT, name=cast)
                    model.graph.node.insert(at, nodes[cast])
                now = cast
            for body in bodies:
                _rename_input(body, name, now)


def _fp32_copy(graph, weight):
    """The name of weight's FP32 copy in graph, made once."""
    name = weight.name + _FP32_SUFFIX
    if name not in set(w.name for w in graph.initializer):
        copy = _clone(weight)
        copy.name = name
        graph.initializer.append(copy)
    return name


def _subgraphs(node):
    for attribute in node.attribute:
        if attribute.g.node:
            yield attribute.g
        for graph in attribute.graphs:
            yield graph


def _outer_names(graph, defined=frozenset()):
    """The names graph's nodes, nested bodies included, read from outside graph."""
    own = set(defined) | set(i.name for i in graph.input) | set(w.name for w in graph.initializer)
    own.update(name for node in graph.node for name in node.output)
    outer = set()
    for node in graph.node:
        outer.update(name for name in node.input if name and name not in own)
        for body in _subgraphs(node):
            outer.update(_outer_names(body, own))
    return outer


def _read_names(graph):
    """Every name graph's nodes read, nested bodies included."""
    read = set()
    for node in graph.node:
        read.update(node.input)
        for body in _subgraphs(node):
            read.update(_read_names(body))
    return read


def _rename_input(graph, old, new):
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for body in _subgraphs(node):
            _rename_input(body, old, new)


# Q/DQ as TensorRT reads it, on 8.6 as on 10 and 11: symmetric (every zero point 0; 8.6's parser refused the CNN's
# asymmetric activations), weights kept float behind a QuantizeLinear/DequantizeLinear pair of their own, and
# float biases. onnxruntime's defaults (INT8 weights into a lone DequantizeLinear, INT32 biases) are refused by
# TensorRT 8.6 on the H100: "only activation types allowed as input to this layer" for the CNN, "Assertion
# params.weights.type() != DataType::kINT8 failed" for the LSTM and the Transformer.
TENSORRT_QDQ = {"ActivationSymmetric": True, "WeightSymmetric": True, "AddQDQPairToWeight": True,
                "DedicatedQDQPair": True, "QuantizeBias": False}
# Q/DQ where TensorRT runs INT8, as its placement guide asks: at the inputs (not the outputs) of weighted ops, of
# pools and of residual Adds (two activations; an Add of a constant, a bias or a LayerNorm's epsilon, TensorRT
# fuses into the op before it). onnxruntime's default also quantizes outputs and wraps Relu, Reshape, Softmax and
# BatchNormalization: ResNet50 got 225 pairs (141 this way), and every precision export erred more through ONNX
# Runtime (ResNet50 0.287 against 0.042, the Transformer 0.124 against 0.094, the CNN 5.7e-3 against 3.2e-3).
INT8_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "MaxPool", "AveragePool", "GlobalAveragePool")


def to_int8(source, dest, calibration):
    """Static Q/DQ quantization (signed INT8 weights per channel and activations) in TENSORRT_QDQ's form, at the
    inputs of INT8_OPS."""
    from onnxruntime import quantization

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            rows = len(next(iter(calibration.values())))
            self.batches = iter([dict((k, v[i:i + 1]) for k, v in calibration.items()) for i in range(rows)])

        def get_next(self):
            return next(self.batches, None)

    import onnx
    graph = onnx.load(source, load_external_data=False).graph
    constants = {w.name for w in graph.initializer}.union(*(n.output for n in graph.node if n.op_type == "Constant"))
    constant_adds = [n.name for n in graph.node if n.op_type == "Add" and constants.intersection(n.input)]
    quantization.quantize_static(source, dest, Reader(), quant_format=quantization.QuantFormat.QDQ,
                                 per_channel=True, activation_type=quantization.QuantType.QInt8,
                                 weight_type=quantization.QuantType.QInt8,
                                 op_types_to_quantize=list(INT8_OPS), nodes_to_exclude=constant_adds,
                                 extra_options={**TENSORRT_QDQ, "OpTypesToExcludeOutputQuantization": list(INT8_OPS)})


def rewrite(plan, work, inputs, within):
    """Writes the plan's reduced-precision model beside model.onnx; what it kept FP32. within(path): whether the
    model at path meets the tolerance."""
    import onnx
    source = os.path.join(work, contract.ARTIFACTS, "model.onnx")
    dest = os.path.join(work, contract.ARTIFACTS, contract.REDUCED_ONNX[plan["precision"]])
    if plan["precision"] == "int8":
        io = read_json(os.path.join(work, contract.IO))
        to_int8(source, dest, int8_calibration_data(plan, io["inputs"]))
        return "onnxruntime.quantization", []
    model = onnx.load(source)
    ranges = value_ranges(model, inputs, work)
    overflowing, looping = overflowing_nodes(model, ranges), looping_nodes(model)
    fixed = set(overflowing) | set(looping)

    def fits(extra):
        onnx.save(to_fp16(_clone(model), fixed | set(extra)), dest)
        return within(dest)

    candidates = by_magnitude(model, ranges, fixed)[:len(model.graph.node) // MOST_KEPT_SHARE]
    sensitive = smallest_keep(fits, candidates)
    if sensitive is None:
        log("FP16 misses the tolerance even with the %d nodes of the largest values FP32 (at most 1/%d of the "
            "model's), so the model is not one for FP16 at this tolerance" % (len(candidates), MOST_KEPT_SHARE))
        fits([])    # the FP16 model goes to the gate, which names its error
        sensitive = []
    elif sensitive:
        fits(sensitive)     # fits() writes dest: the model kept is the last one it converted
    return "onnxconverter-common", (kept_layers(model, overflowing, "values past 65504") +
                                    kept_layers(model, looping, "a loop or branch, run FP32 as a whole") +
                                    kept_layers(model, sensitive, "FP16 missed the tolerance: found by bisection "
                                                                  "against Keras"))


def by_magnitude(model, ranges, fixed):
    """The nodes not yet kept, the largest values they read or make first: float16's absolute rounding grows with
    the value (4 at 5000: a Softmax of logits that large flips its winner, as EfficientNetB0's did)."""
    size = dict((n.name, max([ranges.get(t, 0.0) for t in list(n.input) + list(n.output)] + [0.0]))
                for n in model.graph.node if n.name not in fixed)
    return sorted(size, key=lambda name: -size[name])


def smallest_keep(fits, order):
    """The shortest head of order whose nodes, kept FP32, make fits() true: doubling, then bisection (about
    2 log2(len(order)) conversions); [] when the whole-FP16 model fits, None when not even all of order does."""
    if fits([]):
        return []
    if not order:
        return None
    low, high = 0, 1
    while not fits(order[:high]):
        if high >= len(order):
            return None
        low, high = high, min(2 * high, len(order))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(order[:middle]) else (middle, high)
    return order[:high]


def _clone(message):
    """A copy of an ONNX protobuf message (a model, a weight)."""
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def main(argv):
    plan = contract.read_plan(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    inputs, expected = load_reference(work)
    name = contract.REDUCED_ONNX[plan["precision"]]
    atol = tolerance(plan, default_atol(plan["precision"], False), expected)
    measured = {}   # {path: outputs of the model there now}: the FP16 rewrite ran its final model already

    def within(path):
        measured[path] = run_session(ort_session(path), inputs)
        return verdict(compare(expected, measured[path]), atol)

    with step("precision"):
        library, kept = rewrite(plan, work, inputs, within)
    emit("artifact", name=name, kind=contract.ARTIFACT_KINDS[name])
    with step("verify-precision"):
        path = os.path.join(work, contract.ARTIFACTS, name)
        actual = measured[path] if path in measured else run_session(ort_session(path), inputs)
        errors = compare(expected, actual)
        emit("precision", precision=plan["precision"], artifact=name, library=library, kept_fp32=kept)
        gate(name, errors, atol, os.path.join(work, contract.EVIDENCE), inputs, expected, actual)


if __name__ == "__main__":
    run_main(main)
