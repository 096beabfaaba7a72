"""scripts/trtkit_steps/trt/calibration.py: INT8 calibration data and its cache."""
import re

import numpy as np
import pytest
from engine_inputs import LSTM_INPUT

from trtkit_steps.errors import StepError
from trtkit_steps.storage import save_arrays
from trtkit_steps.trt import calibration


def test_calibration_cache_name_changes_with_model_data_and_version(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"model one")
    data = {"x": np.arange(6, dtype=np.float32).reshape(3, 2)}
    name = calibration.calibration_cache_name(str(onnx), "8.6.0", data)
    assert name.startswith("calibration-") and name.endswith(".cache")
    assert calibration.calibration_cache_name(str(onnx), "8.6.0", data) == name
    assert calibration.calibration_cache_name(str(onnx), "10.3.0", data) != name
    assert calibration.calibration_cache_name(str(onnx), "8.6.0", {"x": data["x"] + 1}) != name
    onnx.write_bytes(b"model two")
    assert calibration.calibration_cache_name(str(onnx), "8.6.0", data) != name


def test_calibration_cache_is_reused_and_shared(tmp_path):
    shared = tmp_path / "calibration-abc.cache"
    data = {"x": np.zeros((4, 2), np.float32)}
    first = tmp_path / "first.cache"
    fresh = calibration.Calibration(data, str(first), str(shared))
    assert not fresh.reused and not first.exists()
    first.write_bytes(b"scales")  # what Polygraphy's calibrator writes when TensorRT calibrates
    fresh.save()
    assert shared.read_bytes() == b"scales"
    second = tmp_path / "second.cache"
    again = calibration.Calibration(data, str(second), str(shared))
    assert again.reused and second.read_bytes() == b"scales"  # TensorRT reads it instead of calibrating


def test_calibration_without_a_cache_from_tensorrt_fails(tmp_path):
    with pytest.raises(StepError, match="no INT8 calibration cache"):
        calibration.Calibration({"x": np.zeros((1, 1))}, str(tmp_path / "c.cache"), str(tmp_path / "s.cache")).save()


def test_calibration_from_one_npy_casts_to_the_input_dtype(tmp_path):
    np.save(tmp_path / "calib.npy", np.ones((5, 11, 192), np.float64))
    arrays = calibration.load_calibration_data(str(tmp_path / "calib.npy"), [LSTM_INPUT])
    assert arrays["lstm_1_input"].shape == (5, 11, 192) and arrays["lstm_1_input"].dtype == np.float32


def test_calibration_folder_joins_files_along_the_batch(tmp_path):
    inputs = [{"name": "a", "shape": [None, 2], "dtype": "float32"},
              {"name": "b/c:0", "shape": [None, 3], "dtype": "int32"}]
    save_arrays(str(tmp_path / "part1.npz"), {"a": np.zeros((2, 2)), "b/c:0": np.zeros((2, 3))})
    np.savez(tmp_path / "part2.npz", **{"a": np.ones((3, 2)), "b/c:0": np.ones((3, 3))})
    (tmp_path / "notes.txt").write_text("ignored")
    arrays = calibration.load_calibration_data(str(tmp_path), inputs)
    assert arrays["a"].shape == (5, 2) and arrays["b/c:0"].shape == (5, 3)
    assert arrays["b/c:0"].dtype == np.int32 and arrays["a"][2:].min() == 1


def test_calibration_npz_with_one_unnamed_array_feeds_the_only_input(tmp_path):
    np.savez(tmp_path / "calib.npz", np.ones((3, 11, 192)))
    assert calibration.load_calibration_data(str(tmp_path / "calib.npz"), [LSTM_INPUT])["lstm_1_input"].shape[0] == 3


def test_calibration_npy_for_two_inputs_is_refused(tmp_path):
    np.save(tmp_path / "calib.npy", np.ones((3, 2)))
    inputs = [dict(LSTM_INPUT, name="a"), dict(LSTM_INPUT, name="b")]
    with pytest.raises(StepError, match="npz keyed by input name"):
        calibration.load_calibration_data(str(tmp_path / "calib.npy"), inputs)


def test_calibration_npz_missing_an_input_is_refused(tmp_path):
    np.savez(tmp_path / "calib.npz", a=np.ones((3, 2)), c=np.ones((3, 2)))
    inputs = [dict(LSTM_INPUT, name="a"), dict(LSTM_INPUT, name="b")]
    with pytest.raises(StepError, match=r"lacks input\(s\) \['b'\]"):
        calibration.load_calibration_data(str(tmp_path / "calib.npz"), inputs)


def test_calibration_with_uneven_sample_counts_is_refused(tmp_path):
    np.savez(tmp_path / "calib.npz", a=np.ones((3, 2)), b=np.ones((4, 2)))
    inputs = [{"name": name, "shape": [None, 2], "dtype": "float32"} for name in ("a", "b")]
    with pytest.raises(StepError, match="same, non-zero number"):
        calibration.load_calibration_data(str(tmp_path / "calib.npz"), inputs)


@pytest.mark.parametrize("name, make, message", [
    ("dims.npy", lambda p: np.save(p, np.ones((5, 11, 100))), "--calib-data: input lstm_1_input has shape 5x11x100"),
    ("words.npy", lambda p: np.save(p, np.array([["a"] * 192] * 11)[None]), "input lstm_1_input cannot be float32"),
    ("pickle.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "is not a .npy or .npz file numpy"),
    ("text.npz", lambda p: p.write_text("not numpy\n"), "is not a .npy or .npz file numpy reads"),
])
def test_bad_calibration_data_is_one_line(tmp_path, name, make, message):
    """Calibration data of the wrong shape or type went to TensorRT as it was, and a file numpy cannot read ended the
    step with numpy's traceback."""
    make(tmp_path / name)
    with pytest.raises(StepError, match=re.escape(message)):
        calibration.load_calibration_data(str(tmp_path / name), [LSTM_INPUT])


def test_calibration_files_of_different_row_shapes_are_refused(tmp_path):
    """A sequence length the model leaves open must still be one length: np.concatenate refused with a traceback."""
    np.save(tmp_path / "a.npy", np.ones((2, 5, 4)))
    np.save(tmp_path / "b.npy", np.ones((2, 6, 4)))
    spec = {"name": "seq", "shape": [None, None, 4], "dtype": "float32"}
    with pytest.raises(StepError, match=r"input seq rows of different shapes \[\(5, 4\), \(6, 4\)\]"):
        calibration.load_calibration_data(str(tmp_path), [spec])


def test_missing_calibration_data_is_refused(tmp_path):
    with pytest.raises(StepError, match="does not exist"):
        calibration.load_calibration_data(str(tmp_path / "nothing.npz"), [LSTM_INPUT])
    with pytest.raises(StepError, match="no .npy or .npz"):
        calibration.load_calibration_data(str(tmp_path), [LSTM_INPUT])
