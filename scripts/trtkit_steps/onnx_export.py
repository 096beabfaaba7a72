"""The Keras model as ONNX, by the routes of contract.ROUTE_ORDER: tf2onnx on the frozen graph, or Keras 3's own
model.export(format="onnx"). Each export is repaired (GELU's Erfc), checked, and run in ONNX Runtime on the
reference inputs; the first route within the export tolerance is kept (keras_stage's export step).
"""
import os

from trtkit_steps import contract
from trtkit_steps.comparison import EXPORT_ATOL, compare, miss, tolerance, verdict
from trtkit_steps.errors import StepError, Unsupported, first_line
from trtkit_steps.events import emit
from trtkit_steps.onnx_export_fixes import loop_warnings, refusal, replace_erfc, unknown_operators
from trtkit_steps.onnx_lstm import unroll_lstms
from trtkit_steps.onnx_names import canonicalize
from trtkit_steps.storage import write_atomic


def export_onnx(model, plan, frozen, reference, work):
    """The model as artifacts/model.onnx, by the first route of contract.ROUTE_ORDER that works for its format;
    the export event names it, and each route tried before it with why it failed."""
    path = os.path.join(work, contract.ARTIFACTS, "model.onnx")
    failed, error, closest = [], None, None
    for route in contract.ROUTE_ORDER[plan["model_format"]]:
        try:
            proto = ROUTES[route](model, plan, frozen, reference, work)
            info = _keep(proto, model, plan, reference, path)
        except StepError as e:
            if isinstance(e, MissedTolerance) and closest is None:
                closest = (route, list(failed), e)
            failed.append({"route": route, "error": first_line(e)})
            error = e
            continue
        emit("export", route=route, failed=failed)
        return info
    if closest:     # every route ran but none within the tolerance: the first one is verified, on record
        route, before, missed = closest
        write_atomic(path, missed.export)
        emit("export", route=route, failed=before)
        _warn(missed.loops)
        return missed.info
    if len(failed) == 1:
        raise error
    raise type(error)("no export route works for this model: %s"
                      % "; ".join("%s: %s" % (f["route"], f["error"]) for f in failed))


def _tf2onnx_route(model, plan, frozen, reference, work):
    import tf2onnx
    graph_def, in_names, out_names = frozen
    try:
        proto, _ = tf2onnx.convert.from_graph_def(_inlinable(graph_def), input_names=in_names,
                                                  output_names=out_names, opset=plan["opset"])
    except Exception as e:  # tf2onnx raises whatever its handlers raise
        raise StepError("tf2onnx failed: %s" % first_line(e)) from None
    renames = dict(zip(in_names, [s["name"] for s in model.inputs]))
    renames.update(zip(out_names, [o["name"] for o in model.outputs]))
    _rename_io(proto.graph, renames)
    return proto


def _keras_export_route(model, plan, frozen, reference, work):
    """Keras 3's model.export(format="onnx"); a Keras 2 .h5 is loaded again by Keras 3 for it."""
    import onnx
    keras_model = model.owner if plan["model_format"] == "keras" else _keras3_model(plan, model, reference[0])
    path = os.path.join(work, "keras-export.onnx")
    try:
        keras_model.export(path, format="onnx", verbose=False, opset_version=plan["opset"])
        proto = onnx.load(path)
    except Exception as e:  # Keras and tf2onnx raise whatever they raise
        raise StepError("Keras' model.export failed: %s" % first_line(e)) from None
    finally:
        if os.path.exists(path):
            os.remove(path)
    initializers = set(t.name for t in proto.graph.initializer)
    graph_inputs = [v.name for v in proto.graph.input if v.name not in initializers]
    graph_outputs = [v.name for v in proto.graph.output]
    if len(graph_inputs) != len(model.inputs) or len(graph_outputs) != len(model.outputs):
        raise StepError("Keras' model.export made %d inputs and %d outputs for the model's %d and %d (tensors the "
                        "model captured became inputs)" % (len(graph_inputs), len(graph_outputs), len(model.inputs),
                                                         len(model.outputs)))
    renames = dict(zip(graph_inputs, [s["name"] for s in model.inputs]))
    renames.update(zip(graph_outputs, [o["name"] for o in model.outputs]))
    _rename_io(proto.graph, renames)
    return proto


def _keras3_model(plan, model, inputs):
    """A Keras 2 .h5 loaded by Keras 3 and called once (its export traces a model that has been called)."""
    import keras
    try:
        keras_model = keras.models.load_model(plan["model"], compile=False, safe_mode=not plan["trust_model"])
        keras_model([inputs[s["name"]] for s in model.inputs] if len(model.inputs) > 1
                    else inputs[model.inputs[0]["name"]], training=False)
    except Exception as e:  # Keras 3 refuses many Keras 2 files ('time_major' of an LSTM)
        raise StepError("Keras 3 cannot load this Keras 2 model: %s" % first_line(e)) from None
    return keras_model


ROUTES = {"tf2onnx": _tf2onnx_route, "keras-export": _keras_export_route}


def _keep(proto, model, plan, reference, path):
    """Repair, check, write and run an export (unroll: fixed-length LSTMs unrolled); what it holds."""
    import onnx
    import tf2onnx
    replace_erfc(proto.graph)
    unknown = unknown_operators(proto)
    if unknown:
        raise Unsupported(refusal(unknown, model.layers))
    loops = loop_warnings(proto.graph, model.layers)   # node names carry the layers' scopes until canonicalize
    canonicalize(proto.graph)      # same model, same bytes: tf2onnx's generated names vary from run to run
    lstms = unroll_lstms(proto) if plan["unroll_lstm"] else []
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx raises its own ValidationError type per version
        raise StepError("the export is not a valid ONNX model: %s" % first_line(e)) from None
    export = proto.SerializeToString(deterministic=True)
    write_atomic(path, export)
    ops = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    info = {"opset": plan["opset"], "ops": ops, "onnx": onnx.__version__, "tf2onnx": tf2onnx.__version__}
    if lstms:
        info["lstms"] = [{"node": name, "unrolled": why is None, "kept_because": why} for name, why in lstms]
    missed = _tolerance_missed(path, reference, plan)
    if missed:
        raise MissedTolerance(missed, export, info, loops)
    _warn(loops)
    return info


class MissedTolerance(StepError):
    """An export that ONNX Runtime runs, but not within the export tolerance: the next route is tried, and if none
    does better this one is kept, for the ONNX stage's verification to fail with its evidence."""

    def __init__(self, message, export, info, loops):
        StepError.__init__(self, message)
        self.export, self.info, self.loops = export, info, loops


def _warn(loops):
    for layer, message in loops:
        emit("warning", message=message, layer=layer)


def _tolerance_missed(path, reference, plan):
    """Why ONNX Runtime's run of the export misses the export tolerance, or None (a route works only within it)."""
    from trtkit_steps.onnx_stage import ort_session, run_session
    inputs, expected = reference
    errors = compare(expected, run_session(ort_session(path), inputs))
    atol = tolerance(plan, EXPORT_ATOL, expected)
    return None if verdict(errors, atol) else miss("ONNX Runtime's run of the export", errors, atol)


# Functions Keras 3 compiles with XLA: grouped convolutions on the CPU (ConvNeXt's depthwise layers).
_XLA_ATTRS = ("_XlaMustCompile", "_noinline")


def _inlinable(graph_def):
    """graph_def, or a copy whose XLA-compiled functions can be inlined: tf2onnx's grappler pass inlines function
    calls, but not those marked _XlaMustCompile, which stay StatefulPartitionedCall nodes ONNX does not have."""
    xla = set(f.signature.name for f in graph_def.library.function
              if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b)
    if not xla:
        return graph_def
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    nodes = list(copy.node) + [node for f in copy.library.function for node in f.node_def]
    holders = [f for f in copy.library.function if f.signature.name in xla] + \
        [node for node in nodes if "f" in node.attr and node.attr["f"].func.name in xla]
    for holder in holders:
        for name in _XLA_ATTRS:
            if name in holder.attr:
                del holder.attr[name]
    return copy


def _rename_io(graph, renames):
    for value in list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
