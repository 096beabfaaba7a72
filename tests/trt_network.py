"""A weakly typed TensorRT 8 network, as its ONNX parser makes one, for the code that asks its layers for types.

An ONNX Cast is a cast layer from TensorRT 8.6's parser on ("CAST"), an identity layer with its output type set
before ("IDENTITY"); every other float tensor reads float32; weights are no inputs.
"""
from types import SimpleNamespace

from onnx import TensorProto

F32, F16, I32 = "float32", "float16", "int32"


class Kind(str):
    """A layer type: compares as its name, and has one (`layer.type.name`), as TensorRT's enum does."""

    @property
    def name(self):
        return str(self)


_ONNX_TYPES = {TensorProto.FLOAT: F32, TensorProto.FLOAT16: F16}


class Layer:
    def __init__(self, kind, inputs, outputs, name=None, cast_to=None, cast_layer="CAST"):
        """outputs: names (float32) or (name, type); cast_to: the type of an ONNX Cast, in cast_layer's form."""
        self.type = Kind(cast_layer if cast_to else kind)
        self.to_type = cast_to if self.type == "CAST" else None            # ICastLayer's, once downcast
        self._identity_type = cast_to if self.type == "IDENTITY" else None
        outputs = [(out, F32) if isinstance(out, str) else out for out in outputs]
        self.name = name or outputs[0][0]
        self.inputs = [None if name is None else SimpleNamespace(name=name) for name in inputs]
        self.outputs = [SimpleNamespace(name=name, dtype=dtype) for name, dtype in outputs]
        self.num_inputs, self.num_outputs = len(self.inputs), len(self.outputs)
        self.get_input, self.get_output = self.inputs.__getitem__, self.outputs.__getitem__
        self.precision, self.output_types = None, {}

    @property
    def precision_is_set(self):
        return self.precision is not None

    def reset_precision(self):
        self.precision = None

    def output_type_is_set(self, index):
        return self._identity_type is not None

    def get_output_type(self, index):
        return self._identity_type

    def set_output_type(self, index, dtype):
        self.output_types[index] = dtype


def network(layers, inputs=("x",)):
    return SimpleNamespace(num_inputs=len(inputs), get_input=lambda i: SimpleNamespace(name=inputs[i], dtype=F32),
                           num_layers=len(layers), get_layer=layers.__getitem__, layers=layers)


def tensorrt(cast_layer="CAST"):
    """The parts of the tensorrt module these asks use; before 8.6 it has no cast layer."""
    kinds = ("CAST", "IDENTITY") if cast_layer == "CAST" else ("IDENTITY",)
    return SimpleNamespace(float32=F32, float16=F16, LayerType=SimpleNamespace(**{k: Kind(k) for k in kinds}),
                           ICastLayer=Layer)


def parsed(model, cast_layer="CAST"):
    """The network TensorRT 8's parser makes of an ONNX model: a layer per node, named as the node."""
    weights = set(w.name for w in model.graph.initializer)
    layers = []
    for node in model.graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None
        layers.append(Layer(node.op_type.upper(), [n for n in node.input if n not in weights], list(node.output),
                            name=node.name, cast_to=_ONNX_TYPES.get(to), cast_layer=cast_layer))
    return network(layers, [i.name for i in model.graph.input])
