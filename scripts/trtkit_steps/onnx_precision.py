"""Reduced precision written into the ONNX model, the way TensorRT 10 and 11 take it (strongly typed networks).

    python3 -m trtkit_steps.onnx_precision PLAN.json

--precision fp16: onnxconverter-common's float16 conversion with float32 inputs and outputs. Nodes whose values
(measured on the FP32 model with the reference inputs) or weights reach past float16's largest finite number stay
FP32, named by the Keras layer they come from. ONNX Runtime cannot show that overflow itself: its CPU provider runs
float16 nodes in float32 and drops the casts between them, so the ranges are read from the FP32 model.
--precision int8: onnxruntime.quantization's static Q/DQ quantization, calibrated on --calib-data.
Either way the new model is verified against Keras with ONNX Runtime before TensorRT sees it.
"""
import os

import numpy as np

from trtkit_steps import contract
from trtkit_steps.comparison import compare, gate, tolerance
from trtkit_steps.errors import Unsupported
from trtkit_steps.events import emit, run_main, step
from trtkit_steps.onnx_stage import ort_session, run_session
from trtkit_steps.storage import load_reference, read_json
from trtkit_steps.trt.calibration import int8_calibration_data
from trtkit_steps.trt.settings import default_atol

FP16_MAX = 65504.0
_FLOAT = 1  # onnx.TensorProto.FLOAT


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


def kept_layers(model, nodes):
    """[{"layer", "nodes"}] for the nodes kept FP32, one entry per Keras layer, in graph order."""
    layers, grouped = keras_layers(model), {}
    for name in nodes:
        grouped.setdefault(layers[name], []).append(name)
    return [{"layer": layer, "nodes": names} for layer, names in grouped.items()]


def refuse_subgraphs(model):
    """onnxconverter-common converts a Loop's body but not the weights it reads from outside, and keeping the
    Loop FP32 leaves the same mismatch: ONNX Runtime refuses the result either way (measured with a masked LSTM,
    which Keras exports as a Loop). So such a model is refused in one line that names the layers."""
    looping = [node.name for node in model.graph.node if node.op_type in ("Loop", "Scan", "If")]
    if looping:
        layers = sorted(set(keras_layers(model)[name] for name in looping))
        raise Unsupported("--precision fp16 cannot rewrite ONNX Loop/Scan/If nodes yet (from layer%s %s): build at "
                          "fp32, or an engine with --precision-recipe flags" % ("s" if len(layers) > 1 else "",
                                                                               ", ".join(layers)))


def to_fp16(model, keep):
    """The float16 model, keep's nodes FP32. Casts to float32 (of shapes, in tf2onnx's LayerNorm) are left to run
    as they are, a cast into float16 after them: the converter types their outputs float16 but leaves their 'to'
    at float32, a model ONNX Runtime refuses."""
    from onnxconverter_common import float16
    del model.graph.value_info[:]   # the same mismatch, for the Casts tf2onnx typed
    casts = [node.name for node in model.graph.node if node.op_type == "Cast" and
             any(a.name == "to" and a.i == _FLOAT for a in node.attribute)]
    # max_finite_val: weights clip at float16's own limit, not the library's default 1e4
    return float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=list(keep) + casts,
                                            max_finite_val=FP16_MAX)


def to_int8(source, dest, calibration):
    """Static Q/DQ quantization (signed INT8 weights per channel and activations), as TensorRT reads it."""
    from onnxruntime import quantization

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            rows = len(next(iter(calibration.values())))
            self.batches = iter([dict((k, v[i:i + 1]) for k, v in calibration.items()) for i in range(rows)])

        def get_next(self):
            return next(self.batches, None)

    quantization.quantize_static(source, dest, Reader(), quant_format=quantization.QuantFormat.QDQ,
                                 per_channel=True, activation_type=quantization.QuantType.QInt8,
                                 weight_type=quantization.QuantType.QInt8)


def rewrite(plan, work, inputs):
    """Writes the plan's reduced-precision model beside model.onnx; what it kept FP32."""
    import onnx
    source = os.path.join(work, contract.ARTIFACTS, "model.onnx")
    dest = os.path.join(work, contract.ARTIFACTS, contract.REDUCED_ONNX[plan["precision"]])
    if plan["precision"] == "int8":
        io = read_json(os.path.join(work, contract.IO))
        to_int8(source, dest, int8_calibration_data(plan, io["inputs"]))
        return "onnxruntime.quantization", []
    model = onnx.load(source)
    refuse_subgraphs(model)
    keep = overflowing_nodes(model, value_ranges(model, inputs, work))
    onnx.save(to_fp16(model, keep), dest)
    return "onnxconverter-common", kept_layers(model, keep)


def main(argv):
    plan = contract.read_plan(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    inputs, expected = load_reference(work)
    name = contract.REDUCED_ONNX[plan["precision"]]
    with step("precision"):
        library, kept = rewrite(plan, work, inputs)
    emit("artifact", name=name, kind=contract.ARTIFACT_KINDS[name])
    with step("verify-precision"):
        actual = run_session(ort_session(os.path.join(work, contract.ARTIFACTS, name)), inputs)
        errors = compare(expected, actual)
        emit("precision", precision=plan["precision"], artifact=name, library=library, kept_fp32=kept)
        gate(name, errors, tolerance(plan, _default_atol(plan["precision"], expected)),
             os.path.join(work, contract.EVIDENCE), inputs, expected, actual)


def _default_atol(precision, expected):
    """FP16 keeps about three significant digits, so its tolerance grows with the outputs: 1e-2 of the largest
    Keras output, and never under 1e-2 (the engine's FP16 tolerance). INT8 is reported, not gated (None)."""
    atol = default_atol(precision, False)
    largest = max([float(np.max(np.abs(v))) for v in expected.values() if np.size(v)] + [1.0])
    return None if atol is None else atol * largest


if __name__ == "__main__":
    run_main(main)
