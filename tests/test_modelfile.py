"""toolkit/modelfile.py: what MODEL is, and the default output names."""
import json
import zipfile

import pytest

from trtkit.errors import InvalidModel, ModelNotFound
from trtkit.modelfile import HDF5_SIGNATURE, resolve_model, safe_name


def test_resolve_model_kinds(tmp_path):
    h5 = tmp_path / "m.h5"
    h5.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    assert resolve_model(h5).format == "h5"
    keras_file = tmp_path / "m.keras"
    with zipfile.ZipFile(keras_file, "w") as z:
        z.writestr("config.json", json.dumps({}))
    assert resolve_model(keras_file).format == "keras"
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"x")
    assert resolve_model(saved).format == "savedmodel"
    with pytest.raises(ModelNotFound):
        resolve_model(tmp_path / "missing.h5")
    hdf5_named_keras = tmp_path / "h5.keras"
    hdf5_named_keras.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    with pytest.raises(InvalidModel):
        resolve_model(hdf5_named_keras)


@pytest.mark.parametrize("name, safe", [("..", "model"), (".", "model"), ("", "model"), ("a b:c", "a_b_c"),
                                        ("..hidden", "hidden"), ("lstm_1", "lstm_1")])
def test_default_out_names_are_sanitized(name, safe):
    assert safe_name(name) == safe
