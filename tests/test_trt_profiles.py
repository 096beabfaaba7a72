"""scripts/trtkit_steps/trt/profiles.py: optimization profiles from io.json and --shapes."""
import pytest
from engine_inputs import LSTM_INPUT, _job, _profiles

from trtkit_steps.errors import StepError
from trtkit_steps.trt import profiles


def test_default_profile_is_batch_1_1024_100000_for_the_lstm_model():
    assert _profiles({}) == {"lstm_1_input": {"min": [1, 11, 192], "opt": [1024, 11, 192],
                                              "max": [100000, 11, 192]}}


def test_default_max_batch_keeps_one_batch_within_1_gib():
    big = {"name": "image", "shape": [None, 3, 512, 512], "dtype": "float32"}  # 3 MiB a sample
    profile = _profiles({}, [big])["image"]
    assert profile["max"] == [2 ** 30 // (3 * 512 * 512 * 4), 3, 512, 512] == [341, 3, 512, 512]
    assert profile["opt"][0] == 341  # opt never exceeds max


def test_default_profile_counts_the_dtype_size():
    small = {"name": "ids", "shape": [None, 2 ** 20], "dtype": "int8"}
    assert _profiles({}, [small])["ids"]["max"][0] == 1024


def test_fixed_batch_input_gets_its_one_shape():
    fixed = {"name": "x", "shape": [4, 8], "dtype": "float32"}
    assert _profiles({}, [fixed]) == {"x": {"min": [4, 8], "opt": [4, 8], "max": [4, 8]}}


def test_batch_sizes_in_shapes_take_the_other_dims_from_the_model():
    profile = _profiles({"lstm_1_input": [1, 100000, 100000]})["lstm_1_input"]
    assert profile == {"min": [1, 11, 192], "opt": [100000, 11, 192], "max": [100000, 11, 192]}


def test_whole_shapes_in_shapes_are_taken_as_given():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    profile = _profiles({"tokens": [[1, 8], [32, 128], [64, 512]]}, [text])["tokens"]
    assert profile == {"min": [1, 8], "opt": [32, 128], "max": [64, 512]}


def test_unknown_dims_without_shapes_ask_for_shapes():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    with pytest.raises(StepError, match="--shapes tokens:MIN/OPT/MAX"):
        _profiles({}, [text])


def test_unknown_dims_with_only_batch_sizes_ask_for_whole_shapes():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    with pytest.raises(StepError, match="whole shapes.*NxN"):
        _profiles({"tokens": [1, 8, 64]}, [text])


@pytest.mark.parametrize("bad", [
    [64, 8, 1],                               # min > opt > max
    [[1, 11, 192], [8, 11, 192], [4, 11, 192]],
    [[1, 11], [8, 11], [16, 11]],             # wrong rank
    [0, 8, 16],                               # a zero batch
    [1, 8],                                   # not three shapes
])
def test_bad_shapes_are_refused(bad):
    with pytest.raises(StepError, match="lstm_1_input"):
        _profiles({"lstm_1_input": bad})


def test_shapes_for_an_unknown_input_name_the_real_inputs():
    with pytest.raises(StepError, match="lstm_1_input"):
        _profiles({"input_1": [1, 2, 3]})


def test_reference_runs_repeat_rows_only_to_fill_a_batch():
    runs = profiles.reference_runs({"x": {"min": [3, 2], "opt": [3, 2], "max": [3, 2]}}, 8)
    assert [(list(indices), kept) for indices, kept in runs] == [([0, 1, 2], 3), ([3, 4, 5], 3), ([6, 7, 0], 2)]


def test_inputs_without_a_common_batch_size_are_refused():
    apart = {"a": {"min": [1, 2], "opt": [1, 2], "max": [4, 2]}, "b": {"min": [8, 2], "opt": [8, 2], "max": [9, 2]}}
    with pytest.raises(StepError, match="no batch size in common"):
        profiles.reference_runs(apart, 8)


def test_typical_batch_becomes_the_profiles_opt_where_shapes_do_not_say():
    two = [LSTM_INPUT, {"name": "b", "shape": [None, 4], "dtype": "float32"}]
    tuned = profiles.resolve_profiles(two, {"b": [1, 8, 16]}, typical_batch=100000)
    assert tuned["lstm_1_input"] == {"min": [1, 11, 192], "opt": [100000, 11, 192], "max": [100000, 11, 192]}
    assert tuned["b"] == {"min": [1, 4], "opt": [8, 4], "max": [16, 4]}       # --shapes wins
    bigger = profiles.resolve_profiles([LSTM_INPUT], {}, typical_batch=200000)["lstm_1_input"]
    assert bigger["opt"][0] == bigger["max"][0] == 200000                    # MAX grows to hold it


def test_exact_batches_add_a_profile_per_batch_after_the_full_range():
    text = {"name": "tokens", "shape": [None, None], "dtype": "int32"}
    full = profiles.resolve_profiles([LSTM_INPUT, text], {"tokens": [[1, 8], [32, 128], [64, 512]]})
    found = profiles.with_exact_batches(full, [1, 64])
    assert found[0] == full                                   # profile 0 stays the full range
    assert found[1]["lstm_1_input"] == {"min": [1, 11, 192], "opt": [1, 11, 192], "max": [1, 11, 192]}
    assert found[2]["tokens"] == {"min": [64, 8], "opt": [64, 128], "max": [64, 512]}   # only the batch is fixed
    assert _job(exact_batches=[1, 64]).settings.all_profiles[1:] == [
        {"lstm_1_input": {"min": [b, 11, 192], "opt": [b, 11, 192], "max": [b, 11, 192]}} for b in (1, 64)]
    assert _job().settings.all_profiles == [_job().settings.profiles]


def test_exact_batches_of_a_fixed_batch_input_are_refused():
    fixed = profiles.resolve_profiles([{"name": "x", "shape": [4, 8], "dtype": "float32"}], {})
    assert len(profiles.with_exact_batches(fixed, [4])) == 2
    with pytest.raises(StepError, match="input x takes only batch 4"):
        profiles.with_exact_batches(fixed, [1, 4])
