"""trtkit.runtime.names: inputs by position, engine name or Keras name; outputs like Keras'."""

import numpy as np
import pytest
from runtime_sim import F16, F32

from trtkit import runtime
from trtkit.runtime import IncompatibleEngine, TensorSpec


def spec(name, keras=None, dtype=F32):
    return TensorSpec(name, keras, runtime.user_dtype(np.dtype(dtype)), np.dtype(dtype))


NAMES = {"inputs": [{"name": "text", "keras_tensor": "text:0"}, {"name": "image", "keras_tensor": "image:0"}],
         "outputs": [{"name": "dense_3", "keras_tensor": "dense_3/Sigmoid:0"}, {"name": "aux", "keras_tensor": None}]}


def test_specs_follow_keras_order_and_keep_what_the_manifest_does_not_name():
    io = [("image", True, F16), ("text", True, np.dtype(np.int32)), ("aux", False, F32), ("dense_3", False, F16),
          ("extra", False, F32)]
    inputs, outputs = runtime.tensor_specs(io, NAMES)
    assert [s.name for s in inputs] == ["text", "image"]
    assert [s.name for s in outputs] == ["dense_3", "aux", "extra"]
    assert inputs[1] == TensorSpec("image", "image:0", F32, F16)   # float16 at the engine, float32 for the user
    assert outputs[0].dtype == F32 and outputs[0].engine_dtype == F16
    assert inputs[0].dtype == np.int32
    assert runtime.tensor_specs(io, None)[0][0].name == "image"    # no manifest: the engine's order


def test_a_manifest_naming_tensors_the_engine_lacks_is_refused():
    with pytest.raises(IncompatibleEngine, match=r"names inputs \['text'\] that the engine does not have"):
        runtime.tensor_specs([("image", True, F32), ("dense_3", False, F32)], NAMES)


def test_aliases():
    assert spec("lstm_1_input", "lstm_1_input:0").aliases == ("lstm_1_input", "lstm_1_input:0")
    assert spec("dense_3", "dense_3/Sigmoid:0").aliases == ("dense_3", "dense_3/Sigmoid:0", "dense_3/Sigmoid")
    assert spec("x").aliases == ("x",)


def test_one_input_by_array_list_or_nested_lists():
    inputs = [spec("lstm_1_input", "lstm_1_input:0")]
    x = np.zeros((2, 11, 192), np.float32)
    assert runtime.map_inputs(x, inputs)["lstm_1_input"] is x
    assert runtime.map_inputs([x], inputs)["lstm_1_input"] is x
    assert runtime.map_inputs([[1.0, 2.0]], inputs)["lstm_1_input"].shape == (1, 2)


@pytest.mark.parametrize("key", ["lstm_1_input", "lstm_1_input:0"])
def test_one_input_by_engine_or_keras_name(key):
    x = np.zeros((2, 11, 192), np.float32)
    assert runtime.map_inputs({key: x}, [spec("lstm_1_input", "lstm_1_input:0")]) == {"lstm_1_input": x}


def test_several_inputs_by_position_or_name():
    inputs = [spec("text", "text:0"), spec("image", "image:0")]
    a, b = np.zeros((2, 3)), np.ones((2, 4))
    assert runtime.map_inputs((a, b), inputs) == {"text": a, "image": b}
    assert runtime.map_inputs({"image:0": b, "text": a}, inputs) == {"text": a, "image": b}


@pytest.mark.parametrize("x, message", [
    ({"text": 1}, "no data for input image (Keras image:0)"),
    ({"text": 1, "image": 2, "label": 3}, "'label' is not an input of the engine; its inputs are text (Keras text:0)"),
    ({"text": 1, "text:0": 1, "image": 2}, "input text (Keras text:0) is given twice"),
    ([1, 2, 3], "the engine has 2 inputs, text (Keras text:0), image (Keras image:0): pass a list of 2 arrays"),
    (np.zeros((2, 3)), "the engine has 2 inputs"),
])
def test_inputs_that_do_not_match(x, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runtime.map_inputs(x, [spec("text", "text:0"), spec("image", "image:0")])


def test_outputs_like_keras():
    outputs = [spec("dense_3"), spec("aux")]
    results = {"aux": np.ones(1), "dense_3": np.zeros(1)}
    assert runtime.arrange_outputs(results, outputs[:1], as_dict=False) is results["dense_3"]
    assert runtime.arrange_outputs(results, outputs, as_dict=False) == [results["dense_3"], results["aux"]]
    assert list(runtime.arrange_outputs(results, outputs, as_dict=True)) == ["dense_3", "aux"]


def test_dtypes_cast_within_a_kind_only():
    inputs = [spec("a", dtype=F16), spec("b"), spec("c", dtype=np.int32)]
    runtime.check_dtypes({"a": np.zeros(1, np.float32), "b": np.zeros(1, np.float64), "c": np.zeros(1, np.int64)},
                         inputs)
    with pytest.raises(TypeError, match="input c is float32; the engine takes int32"):
        runtime.check_dtypes({"a": np.zeros(1), "b": np.zeros(1), "c": np.zeros(1, np.float32)}, inputs)
