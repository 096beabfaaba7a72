"""Steps that need TensorFlow: inspect, reference, freeze, export (ONNX).

    python3 -m trtkit_steps.keras_stage PLAN.json

Every model kind (Keras 2 .h5, Keras 3 .keras, SavedModel) becomes one
concrete function with one named placeholder per input: the frozen graph comes
from it, and so does the ONNX model on the tf2onnx route. A Keras 3 model is
exported by Keras' own model.export(format="onnx") first (contract.ROUTE_ORDER,
onnx_export.py); whichever route is kept, its ONNX model ran in ONNX Runtime on
the reference inputs within the export tolerance.
"""
import json
import os
import re
import zipfile

import numpy as np

from trtkit_steps import contract
from trtkit_steps.comparison import EXPORT_ATOL, compare, gate, tolerance
from trtkit_steps.errors import InvalidModel, StepError, UntrustedModel, first_line
from trtkit_steps.events import emit, run_main, step
from trtkit_steps.model_trust import untrusted_reasons
from trtkit_steps.onnx_export import export_onnx
from trtkit_steps.onnx_export_fixes import layer_of
from trtkit_steps.samples import sample_inputs
from trtkit_steps.storage import reference_paths, save_arrays, write_atomic, write_json

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tf():
    import tensorflow as tf
    return tf


class LoadedModel(object):
    """A model reduced to what the steps need: io specs and a callable."""

    def __init__(self, inputs, outputs, call, params, keras_version, owner, layers):
        self.inputs = inputs      # [{"name", "keras_tensor", "shape", "dtype"}]
        self.outputs = outputs    # [{"name", "keras_tensor"}]
        self.call = call          # list of input arrays -> list of output tensors
        self.params = params
        self.keras_version = keras_version
        self.owner = owner        # keeps the model's variables alive while call is used
        self.layers = layers      # {name: class name} of the Keras layers, nested ones included; {} for a SavedModel


def _spec_name(name):
    """A placeholder name TensorFlow accepts ('input:0' -> 'input')."""
    name = name.split(":")[0]
    return "".join(c if c.isalnum() or c in "_.-/" else "_" for c in name) or "input"


def _keras_tensor_name(tensor, fallback):
    name = getattr(tensor, "name", None) or fallback
    return name if ":" in name else name + ":0"


def _layer_name(tensor, fallback):
    history = getattr(tensor, "_keras_history", None)
    if history is not None:
        owner = getattr(history, "layer", None) or getattr(history, "operation", None)
        if owner is not None and getattr(owner, "name", None):
            return owner.name
    return fallback


def _from_keras(model, keras_version):
    inputs, outputs = [], []
    for i, t in enumerate(model.inputs):
        name = _spec_name(_layer_name(t, "input_%d" % i))
        inputs.append({"name": name, "keras_tensor": _keras_tensor_name(t, name),
                       "shape": [d if d is None else int(d) for d in t.shape],
                       "dtype": np.dtype(getattr(t.dtype, "name", t.dtype)).name})
    for i, t in enumerate(model.outputs):
        name = _layer_name(t, "output_%d" % i)
        outputs.append({"name": name, "keras_tensor": _keras_tensor_name(t, name),
                        "shape": [d if d is None else int(d) for d in t.shape],
                        "dtype": np.dtype(getattr(t.dtype, "name", t.dtype)).name})
    _rename_repeats(inputs, outputs)
    single = len(inputs) == 1

    def call(xs):
        return flat_outputs(model(xs[0] if single else list(xs), training=False))

    return LoadedModel(inputs, outputs, call, int(model.count_params()), keras_version, model, _layers(model))


def _layers(model):
    """{name: class name} of every layer, a Bidirectional's own LSTMs included (Keras 2 and 3 both flatten)."""
    flatten = getattr(model, "_flatten_layers", None)
    layers = flatten(include_self=False, recursive=True) if flatten else getattr(model, "layers", [])
    return dict((layer.name, type(layer).__name__) for layer in layers)


def _rename_repeats(inputs, outputs):
    """Output names that an input or an earlier output has already get a suffix, as Keras 2's output_names do
    (lstm, lstm_1, lstm_2): an LSTM's return_state outputs are three outputs of one layer, and a model can return an
    input as it is. Names are the keys of the reference and the ONNX graph's outputs, so each must be unique."""
    taken = set(spec["name"] for spec in inputs)
    for spec in outputs:
        name, count = spec["name"], 1
        while name in taken:
            name, count = "%s_%d" % (spec["name"], count), count + 1
        spec["name"] = name
        taken.add(name)


def flat_outputs(y):
    """A Keras model's outputs (of a call or predict) as a list in model.outputs' order. Keras flattens a dict of
    outputs by sorted key, but returns the dict in the order the model was built with: its values() can be in
    another order than model.outputs."""
    if isinstance(y, dict):
        return [t for key in sorted(y) for t in flat_outputs(y[key])]
    if isinstance(y, (list, tuple)):
        return [t for item in y for t in flat_outputs(item)]
    return [y]


def _from_saved_model(path):
    tf = _tf()
    loaded = tf.saved_model.load(path)
    if "serving_default" not in loaded.signatures:
        raise InvalidModel("%s has no 'serving_default' signature (found: %s)"
                           % (path, ", ".join(loaded.signatures) or "none"))
    fn = loaded.signatures["serving_default"]
    in_specs = fn.structured_input_signature[1]
    out_names = sorted(fn.structured_outputs)
    inputs = [{"name": _spec_name(n), "keras_tensor": n + ":0",
               "shape": [d if d is None else int(d) for d in s.shape.as_list()],
               "dtype": s.dtype.name} for n, s in sorted(in_specs.items())]
    outputs = [{"name": n, "keras_tensor": n + ":0",
                "shape": [d if d is None else int(d) for d in fn.structured_outputs[n].shape.as_list()],
                "dtype": fn.structured_outputs[n].dtype.name} for n in out_names]
    _rename_repeats(inputs, outputs)
    arg_names = sorted(in_specs)

    def call(xs):
        result = fn(**dict(zip(arg_names, xs)))
        return [result[n] for n in out_names]

    params = int(sum(np.prod(v.shape) for v in getattr(loaded, "variables", [])))
    return LoadedModel(inputs, outputs, call, params, None, loaded, {})


def _keras2():
    """Keras 2: tf_keras from TF 2.16 on, where tf.keras became Keras 3; tf.keras before."""
    try:
        import tf_keras
        return tf_keras
    except ImportError:
        return _tf().keras


def load_model(plan):
    """Load the plan's model; a file that is not a loadable model is an InvalidModel.

    Loading a Keras model can run code the model carries (a Lambda layer's
    bytecode, custom objects): such a model is refused unless the plan trusts it.
    """
    path, kind, trusted = plan["model"], plan["model_format"], plan["trust_model"]
    if not trusted:
        reasons = untrusted_reasons(path, kind)
        if reasons:
            raise UntrustedModel("%s carries code that would run when it loads: %s. Load it only if you trust it: "
                                 "--trust-model" % (os.path.basename(path), "; ".join(reasons)))
    tf = _tf()
    loader = None   # the Keras that reads the file, for the version hint
    try:
        if kind == "savedmodel":
            return _from_saved_model(path)
        if kind == "h5":
            # Keras 3 cannot read Keras 2 .h5 files holding an LSTM ('time_major'),
            # so legacy files go through tf_keras (Keras 2).
            import h5py
            with h5py.File(path, "r") as f:
                if "model_config" not in f.attrs:
                    raise InvalidModel("%s holds weights only (no model_config): save the whole model "
                                       "with model.save(), not model.save_weights()" % os.path.basename(path))
            loader = _keras2()
            return _from_keras(loader.models.load_model(path, compile=False), loader.__version__)
        import keras as loader
        return _from_keras(loader.models.load_model(path, compile=False, safe_mode=not trusted), loader.__version__)
    except StepError:
        raise
    except (OSError, IOError, ValueError, KeyError, TypeError, tf.errors.OpError) as e:
        raise InvalidModel("%s is not a loadable %s model: %s%s" % (
            os.path.basename(path), kind, first_line(e), newer_keras_hint(saved_keras_version(path, kind), loader))
        ) from None


def saved_keras_version(path, kind):
    """The Keras version a .h5 or .keras file says saved it, or None."""
    try:
        if kind == "h5":
            import h5py
            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version")
                return version.decode() if isinstance(version, bytes) else version
        if kind == "keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("metadata.json").decode()).get("keras_version")
    except (OSError, IOError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return None


def newer_keras_hint(saved, loader):
    """' (saved by Keras X, newer than this toolchain's Y: ...)' where the file's Keras is newer, else ''."""
    def release(version):
        return tuple(int(part) for part in re.findall(r"\d+", str(version))[:3])
    if not saved or loader is None or not release(saved) > release(loader.__version__):
        return ""
    return (" (saved by Keras %s, newer than this toolchain's %s: use an image whose Python takes Keras %s, or save "
            "the model with Keras %s)" % (saved, loader.__version__, saved, loader.__version__))


def reference_outputs(model, inputs):
    xs = [inputs[s["name"]] for s in model.inputs]
    try:
        ys = model.call(xs)
    except Exception as e:  # TensorFlow's OpError, Keras' ValueError, whatever a custom layer raises
        raise StepError("the model fails on the sample inputs (%s): give --sample-data that it takes (seeded integer "
                        "inputs are 0 to 9)" % first_line(e)) from None
    return {o["name"]: np.asarray(y) for o, y in zip(model.outputs, ys)}


def freeze(model):
    """Concrete function -> frozen function (variables as constants).

    lower_control_flow=False keeps While loops as they are: the default lowering
    adds unused_control_flow_input placeholders and makes tf2onnx emit Loop +
    TensorList ops that ONNX Runtime refuses.
    """
    tf = _tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    specs = [tf.TensorSpec([None] + s["shape"][1:], s["dtype"], name=s["name"]) for s in model.inputs]
    fn = tf.function(lambda *xs: model.call(list(xs)))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(*specs), lower_control_flow=False)
    graph_def = frozen.graph.as_graph_def()
    in_names = [t.name for t in frozen.inputs]
    out_names = [t.name for t in frozen.outputs]
    placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
    if len(placeholders) != len(model.inputs):
        raise StepError("frozen graph has placeholders %s for inputs %s"
                        % (placeholders, [s["name"] for s in model.inputs]))
    return graph_def, in_names, out_names


def cudnn_warnings(graph_def, layers):
    """A warning per cuDNN RNN op (an LSTM or GRU saved on a GPU): it runs only there, and ONNX has no form of it.
    Ops inside functions are named by the node that calls the function."""
    callers = {}
    for node in graph_def.node:
        for value in node.attr.values():
            for func in [value.func] + list(value.list.func):
                callers.setdefault(func.name, node.name)
    found = [node.name for node in graph_def.node if node.op.startswith("CudnnRNN")]
    found += [callers.get(f.signature.name, f.signature.name) for f in graph_def.library.function
              for node in f.node_def if node.op.startswith("CudnnRNN")]
    warnings = []
    for name in sorted(set(found)):
        layer = layer_of(name, layers)
        warnings.append((layer, "%s holds a cuDNN RNN op (CudnnRNNV3: the model was saved on a GPU): it runs only "
                         "with cuDNN on a GPU, and ONNX and TensorRT have no form of it; load the model on a CPU "
                         "and save it again, so it exports as an ONNX LSTM/GRU" %
                         ("layer '%s'" % layer if layer else "node '%s'" % name)))
    return warnings


def run_frozen(graph_def, in_names, out_names, model, inputs):
    """Run the frozen GraphDef the way its users will: imported into a graph, fed by tensor name."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    feed = {name: inputs[s["name"]] for name, s in zip(in_names, model.inputs)}
    with tf.compat.v1.Session(graph=graph) as session:
        values = session.run(out_names, feed_dict=feed)
    return {o["name"]: v for o, v in zip(model.outputs, values)}


def main(argv):
    plan = contract.read_plan(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    artifacts = os.path.join(work, contract.ARTIFACTS)
    tf = _tf()
    emit("versions", tensorflow=tf.__version__, numpy=np.__version__)

    with step("inspect"):
        model = load_model(plan)
        emit("versions", keras=model.keras_version)
    with step("freeze"):       # the frozen graph names the tensors, and both exports start from it
        graph_def, in_names, out_names = freeze(model)
        names = {
            "inputs": [dict(s, frozen=f, imported="import/" + f) for s, f in zip(model.inputs, in_names)],
            "outputs": [dict(o, frozen=f, imported="import/" + f) for o, f in zip(model.outputs, out_names)],
            "params": model.params,
        }
        emit("names", **names)
        for layer, message in cudnn_warnings(graph_def, model.layers):
            emit("warning", message=message, layer=layer)
    if plan["mode"] == "inspect":
        return

    with step("reference"):
        inputs = sample_inputs(model.inputs, plan)
        expected = reference_outputs(model, inputs)
        inputs_path, outputs_path = reference_paths(work)
        save_arrays(inputs_path, inputs)
        save_arrays(outputs_path, expected)
        write_json(os.path.join(work, contract.IO), names)

    outputs = contract.keras_outputs(plan)
    if "model.pb" in outputs:
        with step("verify-frozen"):
            # deterministic: node attributes are protobuf maps, written in hash order unless asked
            write_atomic(os.path.join(artifacts, "model.pb"), graph_def.SerializeToString(deterministic=True))
            emit("artifact", name="model.pb", kind="frozen", inputs=in_names, outputs=out_names)
            actual = run_frozen(graph_def, in_names, out_names, model, inputs)
            gate("model.pb", compare(expected, actual), tolerance(plan, EXPORT_ATOL, expected),
                 os.path.join(work, contract.EVIDENCE), inputs, expected, actual)
    if "model.onnx" in outputs:
        with step("export"):
            info = export_onnx(model, plan, (graph_def, in_names, out_names), (inputs, expected), work)
            emit("versions", onnx=info.pop("onnx"), tf2onnx=info.pop("tf2onnx"))
            emit("artifact", name="model.onnx", kind="onnx", **info)


if __name__ == "__main__":
    run_main(main)
