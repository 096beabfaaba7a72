"""Pure logic of the keras stage: how a Keras model's inputs and outputs are named and ordered (no TensorFlow)."""
from types import SimpleNamespace

import numpy as np
import pytest

from trtkit_steps import keras_stage
from trtkit_steps.errors import StepError


class _Tensor:
    def __init__(self, layer, shape, name):
        self.name, self.shape, self.dtype = name, shape, "float32"
        self._keras_history = SimpleNamespace(layer=SimpleNamespace(name=layer))


class _Model:
    """A functional model as Keras builds one: outputs given as a dict are flattened by sorted key into
    model.outputs, and a call returns the dict in the order it was built with."""

    def __init__(self, inputs, outputs):
        self.inputs, self._built = inputs, outputs
        self.outputs = [outputs[key] for key in sorted(outputs)]

    def __call__(self, x, training=False):
        return {key: np.ones((len(x), t.shape[1])) for key, t in self._built.items()}

    def count_params(self):
        return 0


X = _Tensor("x", (None, 3), "x:0")


def test_dict_outputs_keep_their_names_with_their_values():
    """{'zz': b_layer (2 wide), 'aa': a_layer (5 wide)}: model.outputs is [a_layer, b_layer], a call gives zz first."""
    model = _Model([X], {"zz": _Tensor("b_layer", (None, 2), "t1"), "aa": _Tensor("a_layer", (None, 5), "t2")})
    loaded = keras_stage._from_keras(model, "3")
    assert [(o["name"], o["shape"]) for o in loaded.outputs] == [("a_layer", [None, 5]), ("b_layer", [None, 2])]
    reference = keras_stage.reference_outputs(loaded, {"x": np.zeros((4, 3), np.float32)})
    assert reference["a_layer"].shape == (4, 5) and reference["b_layer"].shape == (4, 2)


def test_outputs_flatten_as_keras_flattens_them():
    assert keras_stage.flat_outputs({"b": 2, "a": [1, {"d": 4, "c": 3}]}) == [1, 3, 4, 2]
    assert keras_stage.flat_outputs((1, 2)) == [1, 2] and keras_stage.flat_outputs(7) == [7]


def test_outputs_of_one_layer_get_names_of_their_own():
    """An LSTM's return_state outputs come from one layer, and a model may return its input: each output keeps a
    name of its own (Keras 2's lstm, lstm_1, lstm_2), or the reference would keep one of them and the ONNX graph
    would be invalid."""
    states = [_Tensor("lstm", (None, 2), "t%d" % i) for i in range(3)]
    other = _Tensor("lstm_1", (None, 1), "u")   # a layer that Keras named lstm_1 itself
    model = _Model([X], {"a": states[0], "b": states[1], "c": states[2], "d": X, "e": other})
    loaded = keras_stage._from_keras(model, "3")
    assert [o["name"] for o in loaded.outputs] == ["lstm", "lstm_1", "lstm_2", "x_1", "lstm_1_1"]
    assert len(keras_stage.reference_outputs(loaded, {"x": np.zeros((4, 3), np.float32)})) == 5


def test_a_model_that_fails_on_the_sample_inputs_is_one_line():
    """An Embedding of 5 rows fed the seeded integers 0-9 (or --sample-data out of its range) raised TensorFlow's
    InvalidArgumentError as a traceback."""
    def call(xs):
        raise ValueError("indices[0,0] = 5 is not in [0, 5) [Op:GatherV2]\nArguments received by Embedding.call()")
    model = keras_stage.LoadedModel([{"name": "tok"}], [{"name": "flat"}], call, 15, "3", None, {})
    with pytest.raises(StepError, match=r"^the model fails on the sample inputs \(ValueError: indices\[0,0\] = 5 "
                                        r"is not in \[0, 5\) \[Op:GatherV2\]\): give --sample-data"):
        keras_stage.reference_outputs(model, {"tok": np.zeros((8, 4), np.int32)})


def test_onnx_runtime_failing_on_the_sample_inputs_is_one_line():
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from trtkit_steps.onnx_stage import run_session
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert run_session(session, {"x": np.ones((1, 3), np.float32)})["y"].shape == (1, 3)
    with pytest.raises(StepError, match="^ONNX Runtime cannot run the model on the sample inputs: .*dimensions"):
        run_session(session, {"x": np.ones((8, 3), np.float32)})


def test_a_model_saved_by_a_newer_keras_is_refused_with_both_versions(tmp_path):
    """On the H100 the Python 3.9 toolchain (Keras 3.10) refused a .keras of Keras 3.15 with a bare TypeError."""
    import json
    import zipfile
    from types import SimpleNamespace
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    saved = keras_stage.saved_keras_version(str(path), "keras")
    assert saved == "3.15.1"
    hint = keras_stage.newer_keras_hint(saved, SimpleNamespace(__version__="3.10.0"))
    assert "saved by Keras 3.15.1, newer than this toolchain's 3.10.0" in hint
    assert keras_stage.newer_keras_hint(saved, SimpleNamespace(__version__="3.15.1")) == ""
    assert keras_stage.newer_keras_hint(None, SimpleNamespace(__version__="3.10.0")) == ""
    assert keras_stage.saved_keras_version(str(tmp_path / "missing.keras"), "keras") is None
