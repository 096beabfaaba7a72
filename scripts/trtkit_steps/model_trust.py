"""Would loading this model run code that the model carries? Decided without loading it.

Loading a Keras model is not just reading numbers. tf_keras unmarshals and runs the
Python bytecode a Lambda layer stores (its .h5 loader has no safe mode), Keras imports
the modules a config names and calls the custom functions and classes it names, and a
SavedModel graph can call back into Python or read and write files when it runs.
trtkit refuses such models unless the user passes --trust-model.

Rules, applied to every dict of the whole config (nested models, wrappers such as
TimeDistributed and Bidirectional, activations, initializers, ...):
  1. class_name "Lambda": the layer's function is code (tf_keras .h5 keeps it as
     "function": [base64 bytecode, defaults, closure] plus the "module" it came from).
  2. embedded bytecode: class_name "__lambda__" (how Keras 3 writes a lambda:
     {"config": {"code": base64}}), or any string that is base64 of a marshalled code
     object (a lambda activation is written as {"value": [bytecode, null, null]}).
  3. class_name "function" outside Keras: a custom function looked up among custom
     objects, e.g. {"module": "builtins", "class_name": "function", "config": "shout"};
     a registered one reads "config": "my_pkg>shout" (its registered_name stays "function").
  4. a custom class: registered_name or class_name "package>Name" (registered custom
     objects), or a "module" other than keras, tf_keras, tensorflow or builtins.
  5. SavedModel graphs (the graph and every library function) with ops that run Python
     or touch files: PyFunc, PyFuncStateless, EagerPyFunc, WriteFile, ReadFile, MatchingFiles.
A SavedModel's Keras config lives in keras_metadata.pb (one JSON document per object;
TF 2.0-2.4 kept it in saved_model.pb). Configs that do not parse give no reason: the
loader fails on them anyway. Imports: stdlib only; h5py and TensorFlow lazily.
"""
import base64
import collections
import importlib
import json
import os
import zipfile

KERAS_PACKAGES = ("keras", "tf_keras", "tensorflow")
RISKY_OPS = {"PyFunc": "calls Python", "PyFuncStateless": "calls Python", "EagerPyFunc": "calls Python",
             "WriteFile": "writes a file", "ReadFile": "reads a file", "MatchingFiles": "lists files"}
METADATA_PROTOS = ("tf_keras.protobuf.saved_metadata_pb2", "keras.protobuf.saved_metadata_pb2",
                   "tensorflow.python.keras.protobuf.saved_metadata_pb2")
MAX_REASONS = 5


def untrusted_reasons(path, kind):
    """Why loading this model would run code it carries; [] when it would not.
    kind is "h5", "keras" (Keras 3 zip archive with config.json) or "savedmodel" (a folder)."""
    if kind == "h5":
        return reasons_in_config(_h5_config(path))
    if kind == "keras":
        try:
            with zipfile.ZipFile(path) as archive:
                return reasons_in_config(_loads(archive.read("config.json")))
        except (OSError, KeyError, zipfile.BadZipFile):
            return []
    if kind == "savedmodel":
        return _savedmodel_reasons(path)
    raise ValueError(f"unknown model kind {kind!r}")


def reasons_in_config(config):
    """The reasons found in a parsed Keras config (any JSON value; None gives [])."""
    reasons = []
    try:
        _walk(config, "?", reasons)
    except RecursionError:
        reasons.append("the model config is nested too deeply to check")
    return _first(reasons)


def _walk(node, layer, reasons):
    if isinstance(node, list):
        for item in node:
            _walk(item, layer, reasons)
    elif isinstance(node, str) and _is_bytecode(node):
        reasons.append(f"layer '{layer}' embeds Python bytecode (it runs when the model loads)")
    elif isinstance(node, dict):
        own = _own_name(node)
        layer = own or layer
        reason = _reason(node, layer, own is not None)
        if reason:
            reasons.append(reason)
        if node.get("class_name") == "Lambda":
            return   # what is under it is the Lambda's own code: one reason is enough
        for value in node.values():
            _walk(value, layer, reasons)


def _own_name(node):
    """The name a layer's (config has "trainable") or model's (config has "layers") config dict gives itself."""
    config = node.get("config")
    name = node.get("name")
    if not isinstance(name, str) and isinstance(config, dict) and ("trainable" in config or "layers" in config):
        name = config.get("name")
    return name if isinstance(name, str) else None


def _reason(node, layer, is_layer):
    cls, module, registered = node.get("class_name"), node.get("module"), node.get("registered_name")
    if cls == "Lambda":
        return f"layer '{layer}' is a Lambda (its Python code runs when the model loads)"
    if cls == "__lambda__":
        return f"layer '{layer}' embeds Python bytecode (it runs when the model loads)"
    if cls == "function":
        if _is_keras(module):
            return None
        return f"layer '{layer}' calls the custom function '{node.get('config')}' (code from outside Keras)"
    registered_names = [n for n in (registered, cls) if isinstance(n, str) and ">" in n]
    if registered_names:
        name, package = registered_names[0], registered_names[0].split(">")[0]
    elif isinstance(module, str) and module != "builtins":
        name, package = cls, module
    else:
        return None
    if _is_keras(package):
        return None
    return f"layer '{layer}' {'is' if is_layer else 'uses'} a custom class '{name}' (module {package})"


def _is_keras(module):
    return isinstance(module, str) and module.split(".")[0] in KERAS_PACKAGES


def _is_bytecode(text):
    """Base64 of a marshalled code object ("4w"/"Yw" are the base64 of its type byte, 0xe3 or 0x63)."""
    if len(text) < 24 or text[:2] not in ("4w", "Yw"):
        return False
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        return False
    return True


def _h5_config(path):
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return _loads(f.attrs.get("model_config"))
    except OSError:
        return None


def _savedmodel_reasons(folder):
    metadata = _read(os.path.join(folder, "keras_metadata.pb"))
    ops, docs = _graph_facts(_read(os.path.join(folder, "saved_model.pb")))
    reasons = []
    for doc in (_metadata_docs(metadata) if metadata else []) + docs:
        reasons += reasons_in_config(doc)
    for op, node, function in ops:   # node and function are None when found without TensorFlow
        where = f"node '{node}'" if node else "the graph"
        where += f" of function '{function}'" if function else ""
        reasons.append(f"{where} runs op {op} ({RISKY_OPS[op]} when the graph runs)")
    return _first(reasons)


def _metadata_docs(data):
    """The JSON documents of keras_metadata.pb, one per saved Keras object."""
    for name in METADATA_PROTOS:
        try:
            proto = importlib.import_module(name).SavedMetadata.FromString(data)
        except Exception:   # not installed here, or broken: try the next, then scan the raw bytes
            continue
        return [_loads(node.metadata) for node in proto.nodes]
    return _json_objects(data)


def _graph_facts(data):
    """The risky (op, node, function) of saved_model.pb, and the Keras metadata it may hold."""
    try:
        from tensorflow.core.protobuf import saved_model_pb2
        model = saved_model_pb2.SavedModel.FromString(data)
    except Exception:   # no TensorFlow here: look for the ops' names as NodeDef.op fields (tag 0x12, length, name)
        return [(op, None, None) for op in sorted(RISKY_OPS) if b"\x12" + bytes([len(op)]) + op.encode() in data], []
    ops, docs = [], []
    for graph in model.meta_graphs:
        ops += [(n.op, n.name, None) for n in graph.graph_def.node if n.op in RISKY_OPS]
        for function in graph.graph_def.library.function:
            ops += [(n.op, n.name, function.signature.name) for n in function.node_def if n.op in RISKY_OPS]
        docs += [_loads(n.user_object.metadata) for n in graph.object_graph_def.nodes
                 if n.WhichOneof("kind") == "user_object" and n.user_object.metadata]
    return ops, docs


def _json_objects(data):
    """Every JSON object stored verbatim in a binary file (protobuf keeps strings as they are)."""
    text, decoder, found = data.decode("utf-8", "replace"), json.JSONDecoder(), []
    at = text.find("{")
    while at >= 0:
        try:
            doc, end = decoder.raw_decode(text, at)
            found.append(doc)
        except (ValueError, RecursionError):
            end = at + 1
        at = text.find("{", end)
    return found


def _loads(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _first(reasons):
    return list(collections.OrderedDict.fromkeys(reasons))[:MAX_REASONS]
