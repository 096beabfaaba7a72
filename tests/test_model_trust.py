"""scripts/trtkit_steps/model_trust.py: does loading a model run code that the model carries?

The config walk runs here on hand-written configs (the host has neither h5py nor TensorFlow);
real models are built and scanned inside the stand-in image by tests/trust_models.py.
"""
import json
import zipfile

import pytest
from conftest import run_in_standin

from trtkit_steps import model_trust
from trtkit_steps.model_trust import reasons_in_config, untrusted_reasons

LAMBDA = "is a Lambda (its Python code runs when the model loads)"
EMBEDS = "embeds Python bytecode (it runs when the model loads)"
BYTECODE = "4wEAAAAAAAAAAAAAAAIAAAATAAAA8wwAAACXAHwAZAF6BQAAUwCpAk5nAAAAAAAAAECpAKkB2gF0\ncwEAAAAg+hsv\n"
DENSE = {"class_name": "Dense", "config": {"name": "d", "trainable": True, "activation": "relu",
                                           "kernel_initializer": {"module": "keras.initializers",
                                                                  "class_name": "GlorotUniform", "config": {}}}}


def layer(cls, name, **config):
    return {"class_name": cls, "config": dict(config, name=name, trainable=True), "name": name}


def model(*layers, cls="Functional"):
    return {"class_name": cls, "config": {"name": "m", "layers": list(layers)}}


def test_plain_configs_are_trusted():
    k3 = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
          "config": {"name": "d", "trainable": True, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                               "config": {"name": "float32"}}}}
    tuple_ = {"class_name": "__tuple__", "items": [None, 8], "module": "builtins"}
    assert reasons_in_config(model(DENSE, k3, tuple_, {"module": "tf_keras.src.engine.functional", "class_name": "X",
                                                       "registered_name": "keras>Thing"})) == []
    assert reasons_in_config(None) == reasons_in_config("not json") == []


def test_lambda_anywhere():
    td = layer("TimeDistributed", "td", layer=layer("Lambda", "inner_fn", function=[BYTECODE, None, None],
                                                      function_type="lambda", module="__main__"))
    nested = model(model(layer("Lambda", "deep", function="named_fn", function_type="function"), cls="Sequential"))
    assert reasons_in_config(model(td)) == ["layer 'inner_fn' " + LAMBDA]
    assert reasons_in_config(nested) == ["layer 'deep' " + LAMBDA]


def test_embedded_bytecode_outside_a_lambda_layer():
    keras3 = layer("Dense", "k3", activation={"class_name": "__lambda__", "config": {"code": BYTECODE}})
    tf_keras = layer("Dense", "tfk", activation={"value": [BYTECODE, None, None]})
    assert reasons_in_config(model(keras3, tf_keras)) == [f"layer 'k3' {EMBEDS}", f"layer 'tfk' {EMBEDS}"]
    assert reasons_in_config(model(layer("Dense", "4wEAAAAAAAAAAAAAAAIAAAA!"))) == []   # not base64


def test_custom_functions_and_classes():
    fn = {"module": "builtins", "class_name": "function", "config": "shout", "registered_name": "function"}
    keras_fn = {"module": "keras.src.ops.nn", "class_name": "function", "config": "relu"}
    found = reasons_in_config(model(
        layer("Dense", "loud", activation=fn), layer("Dense", "ok", activation=keras_fn),
        layer("my_pkg>MyLayer", "mine"),
        {"module": None, "class_name": "K3", "registered_name": "k3pkg>K3", "config": {"name": "k3", "trainable": 1}},
        layer("Dense", "init", kernel_initializer={"module": "evil.init", "class_name": "Boom", "config": {}}),
        {"module": "keras_evil", "class_name": "Y", "config": {"name": "y", "trainable": True}}))
    assert found == ["layer 'loud' calls the custom function 'shout' (code from outside Keras)",
                     "layer 'mine' is a custom class 'my_pkg>MyLayer' (module my_pkg)",
                     "layer 'k3' is a custom class 'k3pkg>K3' (module k3pkg)",
                     "layer 'init' uses a custom class 'Boom' (module evil.init)",
                     "layer 'y' is a custom class 'Y' (module keras_evil)"]


def test_reasons_are_deduplicated_and_capped():
    lam = layer("Lambda", "same")
    assert len(reasons_in_config(model(lam, lam))) == 1
    assert len(reasons_in_config(model(*[layer("Lambda", str(i)) for i in range(20)]))) == model_trust.MAX_REASONS


def test_deep_nesting_is_not_trusted():
    deep = layer("Lambda", "bottom")
    for _ in range(5000):
        deep = {"config": [deep]}
    assert reasons_in_config(deep) == ["the model config is nested too deeply to check"]


def test_keras_archive_on_the_host(tmp_path):
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(model(layer("Lambda", "zipped"))))
    assert untrusted_reasons(str(path), "keras") == ["layer 'zipped' " + LAMBDA]
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    assert untrusted_reasons(str(tmp_path / "bad.keras"), "keras") == []


def test_savedmodel_without_tensorflow(tmp_path):
    """The raw fallbacks: JSON documents inside keras_metadata.pb, op names inside saved_model.pb."""
    if any(_importable(name) for name in ("tensorflow",) + model_trust.METADATA_PROTOS):
        pytest.skip("TensorFlow is importable here: the fallbacks would not run")
    doc = json.dumps(layer("Lambda", "meta")).encode()
    (tmp_path / "keras_metadata.pb").write_bytes(b"\n\x7b" + doc + b"\x1a\x02{}")   # 0x7b: a length that reads "{"
    (tmp_path / "saved_model.pb").write_bytes(b"\x08\x01\x12\x09WriteFile\x12\x05Const")
    assert untrusted_reasons(str(tmp_path), "savedmodel") == [
        "layer 'meta' " + LAMBDA,
        "the graph runs op WriteFile (writes a file when the graph runs)"]
    assert untrusted_reasons(str(tmp_path / "missing"), "savedmodel") == []


def _importable(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


EXPECTED = {
    "lambda_top.h5": f"layer 'evil' {LAMBDA}",
    "lambda_nested.h5": f"layer 'nested_evil' {LAMBDA}",
    "lambda_timedistributed.h5": f"layer 'td_evil' {LAMBDA}",
    "custom_activation.h5": "layer 'loud' calls the custom function 'shout' (code from outside Keras)",
    "custom_layer.h5": "layer 'mine' is a custom class 'my_pkg>MyLayer' (module my_pkg)",
    "lambda.keras": f"layer 'k3_evil' {LAMBDA}",
    "lambda_activation.keras": f"layer 'lambda_act' {EMBEDS}",
    "lambda_savedmodel": f"layer 'evil' {LAMBDA}",
    "write_file_savedmodel": "runs op WriteFile (writes a file when the graph runs)",
    "py_function_savedmodel": "runs op EagerPyFunc (calls Python when the graph runs)",
}
SAFE = ["safe_lstm.h5", "safe_cnn.h5", "safe_mlp.keras", "safe_savedmodel", "safe_export", "safe_nested.h5",
        "weights_only.h5", "not_hdf5.h5"]   # the last two: no config to judge, the loader rejects them
NO_TF = {"no-tf:safe_savedmodel": None, "no-tf:safe_export": None, "no-tf:lambda_savedmodel": f"layer 'evil' {LAMBDA}",
         "no-tf:write_file_savedmodel": "the graph runs op WriteFile",
         "no-tf:py_function_savedmodel": "the graph runs op EagerPyFunc"}


@pytest.fixture(scope="module")
def scanned(standin, docker_client, tmp_path_factory):
    """Build every model in one stand-in container and scan it there: {name: reasons}."""
    out = run_in_standin(docker_client, standin, "tests/trust_models.py", tmp_path_factory.mktemp("trust-models"), [])
    results = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(results, indent=1))
    return results


@pytest.mark.docker
@pytest.mark.parametrize("name", SAFE)
def test_real_safe_models(scanned, name):
    assert scanned[name] == []


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_unsafe_models(scanned, name):
    assert any(EXPECTED[name] in reason for reason in scanned[name]), scanned[name]


@pytest.mark.docker
@pytest.mark.parametrize("name", sorted(NO_TF))
def test_real_savedmodels_without_tensorflow(scanned, name):
    if NO_TF[name] is None:
        assert scanned[name] == []
    else:
        assert any(NO_TF[name] in reason for reason in scanned[name]), scanned[name]
