"""benchmarks/rewrite_types.py's ways of asking TensorRT 8 for the rewrite's types, on a fake network (the builds
themselves need a GPU: run.sh rewrite-types)."""
import importlib
import sys

import pytest
from trt_network import F16, F32, Layer, network, tensorrt


@pytest.fixture
def study(monkeypatch):
    trt = tensorrt()
    trt.ILogger = type("ILogger", (), {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2})
    trt.IProfiler = type("IProfiler", (), {})
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    for name in ("rewrite_types", "layer_profile"):   # imported afresh on the fake, and forgotten after the test
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
    return importlib.import_module("rewrite_types")


def _network():
    """keep_io_types' cast in, a float16 convolution, a node kept FP32 between casts, and the cast out."""
    return network([Layer("", ["x"], ["x16"], cast_to=F16), Layer("CONVOLUTION", ["x16"], ["conv"]),
                    Layer("", ["conv"], ["conv32"], cast_to=F32), Layer("ELEMENTWISE", ["conv32"], ["big"]),
                    Layer("", ["big"], ["big16"], cast_to=F16), Layer("ACTIVATION", ["big16"], ["act"]),
                    Layer("", ["act"], ["y"], cast_to=F32)])


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
