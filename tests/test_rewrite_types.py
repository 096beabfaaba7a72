"""benchmarks/rewrite_types.py's ways of asking TensorRT 8 for the rewrite's types, on a fake network (the builds
themselves need a GPU: run.sh rewrite-types)."""
import enum
import importlib
import sys
from types import ModuleType, SimpleNamespace

import pytest

F32, F16 = "float32", "float16"
Kind = enum.Enum("LayerType", "IDENTITY CAST CONVOLUTION ELEMENTWISE ACTIVATION")


@pytest.fixture
def study(monkeypatch):
    trt = ModuleType("tensorrt")
    trt.float32, trt.float16 = F32, F16
    trt.ILogger = type("ILogger", (), {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2})
    trt.IProfiler = type("IProfiler", (), {})
    trt.LayerType = Kind
    trt.ICastLayer = Layer
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for name in ("rewrite_types", "layer_profile"):   # imported afresh on the fake, and forgotten after the test
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
    return importlib.import_module("rewrite_types")


class Layer:
    def __init__(self, kind, inputs, outputs, to_type=None):
        self.type, self.name, self.to_type = Kind[kind], outputs[0], to_type
        self.inputs = [SimpleNamespace(name=name) for name in inputs]
        self.outputs = [SimpleNamespace(name=name, dtype=F32) for name in outputs]
        self.num_inputs, self.num_outputs = len(self.inputs), len(self.outputs)
        self.get_input, self.get_output = self.inputs.__getitem__, self.outputs.__getitem__
        self.precision, self.output_types = None, {}

    @property
    def precision_is_set(self):
        return self.precision is not None

    def reset_precision(self):
        self.precision = None

    def set_output_type(self, index, dtype):
        self.output_types[index] = dtype


def _network():
    """keep_io_types' cast in, a float16 convolution, a node kept FP32 between casts, and the cast out."""
    layers = [Layer("CAST", ["x"], ["x16"], to_type=F16), Layer("CONVOLUTION", ["x16"], ["conv"]),
              Layer("CAST", ["conv"], ["conv32"], to_type=F32), Layer("ELEMENTWISE", ["conv32"], ["big"]),
              Layer("CAST", ["big"], ["big16"], to_type=F16), Layer("ACTIVATION", ["big16"], ["act"]),
              Layer("CAST", ["act"], ["y"], to_type=F32)]
    return SimpleNamespace(num_inputs=1, get_input=lambda i: SimpleNamespace(name="x", dtype=F32),
                           num_layers=len(layers), get_layer=layers.__getitem__, layers=layers)


@pytest.mark.parametrize("variant, asked, output_types", [
    ("trtkit", {"fp16": 2, "fp32": 1, "unset": 4}, {}),
    ("outputs", {"fp16": 2, "fp32": 1, "unset": 4}, {"conv": F16, "big": F32, "act": F16}),
    ("fp32-only", {"fp16": 0, "fp32": 1, "unset": 6}, {}),
    ("free", {"fp16": 0, "fp32": 0, "unset": 7}, {})])
def test_each_variant_asks_what_it_names(study, variant, asked, output_types):
    network = _network()
    steps, _ = study.VARIANTS[variant]
    for step in steps:
        step(network)
    counts, fp32 = study.asked(network)
    assert counts == asked
    assert fp32 == (["big (ELEMENTWISE)"] if asked["fp32"] else [])
    assert {layer.name: types[0] for layer in network.layers for types in [layer.output_types] if types} == \
        output_types
