"""--sample-data as the in-container step reads it: every way it can be wrong is one line naming the input."""

import numpy as np
import pytest

from trtkit_steps.errors import StepError, Unsupported
from trtkit_steps.samples import sample_inputs
from trtkit_steps.storage import save_arrays

LSTM_INPUT = {"name": "lstm_1_input", "shape": [None, 11, 192], "dtype": "float32"}
TWO_INPUTS = [{"name": "a", "shape": [None, 3], "dtype": "float32"}, {"name": "b", "shape": [None], "dtype": "int32"}]


def samples(path, specs=(LSTM_INPUT,)):
    return sample_inputs(list(specs), {"sample_data": str(path), "seed": 0, "shapes": {}})


def test_good_sample_data_is_read_in_the_inputs_dtypes(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((4, 11, 192)))
    assert samples(tmp_path / "x.npy")["lstm_1_input"].dtype == np.float32
    np.savez(tmp_path / "x.npz", a=np.ones((2, 3)), b=np.arange(2.0))
    read = samples(tmp_path / "x.npz", TWO_INPUTS)
    assert read["a"].shape == (2, 3) and read["b"].dtype == np.int32


def test_an_earlier_builds_reference_inputs_are_sample_data(tmp_path):
    """reference-inputs.npz as trtkit writes it (save_arrays: names kept apart, as they may hold '/' and ':')."""
    save_arrays(str(tmp_path / "reference-inputs.npz"), {"a": np.ones((2, 3)), "b": np.arange(2)})
    read = samples(tmp_path / "reference-inputs.npz", TWO_INPUTS)
    assert read["a"].shape == (2, 3) and read["b"].tolist() == [0, 1]


@pytest.mark.parametrize("name, make, message", [
    ("text.npz", lambda p: p.write_text("not numpy at all\n" * 20), "is neither a .npy nor a .npz file"),
    ("empty.npz", lambda p: p.write_bytes(b""), "is neither a .npy nor a .npz file"),
    ("cut.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"), "is not a .npy or .npz file numpy reads ("),
    ("broken.npz", lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 50), "is not a .npy or .npz file numpy reads ("),
    ("pickle.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "is not a .npy or .npz file numpy"),
    ("rank.npy", lambda p: np.save(p, np.ones((4, 11))), "input lstm_1_input has shape 4x11, the model takes ?x11x192"),
    ("dims.npy", lambda p: np.save(p, np.ones((4, 11, 3))), "has shape 4x11x3, the model takes ?x11x192"),
    ("no_rows.npy", lambda p: np.save(p, np.ones((0, 11, 192))), "has shape 0x11x192"),
    ("words.npy", lambda p: np.save(p, np.array([["a"] * 192] * 11)[None]), "input lstm_1_input cannot be float32 ("),
])
def test_bad_sample_data_is_one_line(tmp_path, name, make, message):
    make(tmp_path / name)
    with pytest.raises(StepError) as raised:
        samples(tmp_path / name)
    text = str(raised.value)
    assert text.startswith("--sample-data") and message in text and "\n" not in text and "Traceback" not in text


def test_inputs_of_different_batch_sizes_are_refused(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.ones((2, 3)), b=np.arange(5))
    with pytest.raises(StepError, match=r"different batch sizes \[2, 5\]"):
        samples(tmp_path / "x.npz", TWO_INPUTS)
    np.savez(tmp_path / "y.npz", a=np.ones((2, 3)))
    with pytest.raises(StepError, match=r"lacks input\(s\) \['b'\]"):
        samples(tmp_path / "y.npz", TWO_INPUTS)


def test_seeded_inputs_keep_a_batch_the_model_fixes():
    """An ONNX model exported for batch 1 takes only batch 1: its reference is one row (eight rows made ONNX
    Runtime fail with a traceback), for every input; without a fixed batch, eight rows; the bench sets its own."""
    fixed, free = {"shape": [1, 3], "dtype": "float32"}, {"shape": [None, 3], "dtype": "float32"}
    specs = [dict(fixed, name="fixed"), dict(free, name="free")]
    plan = {"sample_data": None, "seed": 0, "shapes": {}}
    assert {name: a.shape for name, a in sample_inputs(specs, plan).items()} == {"fixed": (1, 3), "free": (1, 3)}
    assert sample_inputs([dict(free, name="free")], plan)["free"].shape == (8, 3)
    bench = sample_inputs(specs, dict(plan, sample_batch=64))
    assert {name: a.shape for name, a in bench.items()} == {"fixed": (64, 3), "free": (64, 3)}


def test_a_scalar_input_is_refused_in_one_line(tmp_path):
    """An ONNX model may take a scalar (shape []); the seeded inputs indexed its first dimension (IndexError)."""
    specs = [{"name": "x", "shape": [None, 3], "dtype": "float32"}, {"name": "t", "shape": [], "dtype": "float32"}]
    np.savez(tmp_path / "x.npz", x=np.ones((2, 3)), t=np.float32(2))
    for given in (None, str(tmp_path / "x.npz")):     # seeded, and --sample-data (batches of 0-d arrays)
        with pytest.raises(Unsupported, match=r"^input t is a scalar \(shape \[\]\)"):
            sample_inputs(specs, {"sample_data": given, "seed": 0, "shapes": {}})


@pytest.mark.parametrize("values", [np.array([0.5, 1.0]), np.array([2**31, 1]), np.array([np.nan, 1.0])])
def test_integer_inputs_take_only_values_they_hold(tmp_path, values):
    """numpy casts 0.5 to 0 and 2**31 to -2**31 without a word: both sides were verified on inputs nobody gave."""
    np.savez(tmp_path / "x.npz", a=np.ones((2, 3)), b=values)
    with pytest.raises(StepError, match=r"^--sample-data: input b takes int32, and its (float64|int64) values are not"):
        samples(tmp_path / "x.npz", TWO_INPUTS)


def test_seeded_bool_inputs_hold_both_values():
    """A mask input was cast from normal floats, all True: False rows were never verified."""
    mask = sample_inputs([{"name": "mask", "shape": [None, 11], "dtype": "bool"}],
                         {"sample_data": None, "seed": 0, "shapes": {}})["mask"]
    assert mask.dtype == np.bool_ and 0.3 < mask.mean() < 0.7
