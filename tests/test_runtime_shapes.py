"""trtkit.runtime.shapes: the profile a call runs on, and the chunks a batch is split into."""

import pytest

from trtkit import runtime
from trtkit.runtime import ProfileRange

LSTM_ROW = 11 * 192   # the origin model's input: (batch, 11, 192) float32


def lstm_profile(low=1, opt=1024, high=100000):
    return {"lstm_1_input": ProfileRange((low, 11, 192), (opt, 11, 192), (high, 11, 192))}


def test_batch_of():
    assert runtime.batch_of({"a": (4, 2), "b": (4,)}) == 4
    with pytest.raises(ValueError, match="different batch sizes"):
        runtime.batch_of({"a": (4, 2), "b": (5,)})
    with pytest.raises(ValueError, match="needs a batch dimension"):
        runtime.batch_of({"a": ()})


def test_select_profile():
    narrow = {"x": ProfileRange((1, 8), (16, 8), (64, 8))}
    wide = {"x": ProfileRange((1, 8), (512, 8), (4096, 8))}
    other = {"x": ProfileRange((1, 16), (1, 16), (8, 16))}
    profiles = [other, wide, narrow]
    assert runtime.select_profile(profiles, {"x": (32, 8)}) == 2      # both hold it: the narrower one
    assert runtime.select_profile(profiles, {"x": (1000, 8)}) == 1
    assert runtime.select_profile(profiles, {"x": (10000, 8)}) == 1   # no profile holds it: the longest runs
    assert runtime.select_profile(profiles, {"x": (3, 16)}) == 0
    with pytest.raises(ValueError, match=r"fit none of the engine's optimization profiles \(profile 0: x \[1, 16\]"):
        runtime.select_profile(profiles, {"x": (3, 12)})
    with pytest.raises(ValueError, match="fit none"):
        runtime.select_profile(profiles, {"x": (3, 8, 1)})


def test_a_profile_for_exactly_the_batch_wins_over_the_full_range():
    full = {"x": ProfileRange((1, 8), (1024, 8), (100000, 8))}
    profiles = [full] + [{"x": ProfileRange((b, 8), (b, 8), (b, 8))} for b in (1, 64)]   # build --exact-batches 1,64
    assert [runtime.select_profile(profiles, {"x": (b, 8)}) for b in (1, 2, 64, 65, 100000)] == [1, 0, 2, 0, 0]
    plan = runtime.plan_call(profiles, {"x": (64, 8)}, 32, 16 << 20, 32 << 20)
    assert (plan.profile, plan.chunks, plan.buffer_rows, plan.small) == (2, [(0, 64)], 64, True)


def test_small_batches_are_one_run_from_buffers_made_for_the_largest_small_batch():
    plan = runtime.plan_call([lstm_profile()], {"lstm_1_input": (64, 11, 192)}, LSTM_ROW * 4, 16 << 20, 32 << 20)
    assert plan == runtime.CallPlan(0, [(0, 64)], (16 << 20) // (LSTM_ROW * 4), small=True)
    assert plan.buffer_rows == 1985


def test_large_batches_stream_in_chunks_of_the_chunk_bytes_and_one_shorter():
    """Two shapes for TensorRT, not one per run: each change of shape makes the stream wait."""
    plan = runtime.plan_call([lstm_profile()], {"lstm_1_input": (100000, 11, 192)}, LSTM_ROW * 4, 16 << 20, 64 << 20)
    assert not plan.small
    assert plan.buffer_rows == (64 << 20) // (LSTM_ROW * 4) == 7943
    sizes = [stop - start for start, stop in plan.chunks]
    assert sizes == [7943] * 12 + [4684] and sum(sizes) == 100000
    assert all(a[1] == b[0] for a, b in zip(plan.chunks, plan.chunks[1:]))


def test_batches_beyond_the_profile_are_split_even_when_small():
    profile = {"x": ProfileRange((1, 4), (8, 4), (64, 4))}
    plan = runtime.plan_call([profile], {"x": (1000, 4)}, 16, 16 << 20, 32 << 20)
    assert not plan.small and plan.buffer_rows == 64
    assert max(stop - start for start, stop in plan.chunks) <= 64 and plan.chunks[-1][1] == 1000


@pytest.mark.parametrize("total, rows, low, sizes", [
    (10, 10, 1, [10]), (10, 4, 1, [4, 4, 2]), (9, 4, 3, [3, 3, 3]), (12, 4, 4, [4, 4, 4]), (1, 100, 1, [1]),
    (11, 4, 2, [4, 4, 3]), (9, 4, 2, [4, 3, 2]), (100000, 7943, 1, [7943] * 12 + [4684]),
    # rows at the profile's smallest batch (a few rows fill a chunk): the rest joins longer runs, up to the max
    (12, 8, 8, [12]), (70, 8, 8, [8, 9, 9, 9, 8, 9, 9, 9])])
def test_plan_chunks(total, rows, low, sizes):
    chunks = runtime.plan_chunks(total, rows, low, 64)
    assert [stop - start for start, stop in chunks] == sizes
    assert chunks[0][0] == 0 and chunks[-1][1] == total


@pytest.mark.parametrize("total, rows, low, message", [
    (13, 4, 4, "batches of 4 to 4 rows: 13 rows cannot be split"), (2, 8, 3, "2 rows cannot be split"),
    (0, 8, 1, "at least one row")])
def test_plan_chunks_refuses(total, rows, low, message):
    with pytest.raises(ValueError, match=message):
        runtime.plan_chunks(total, rows, low, rows)


def test_a_streamed_batch_within_the_profile_runs_even_where_chunks_of_its_bytes_cannot_split_it():
    """Rows of 12 MiB on a profile of 8 to 64: 64 MiB chunks would be 5 rows, raised to the smallest batch, 8.
    12 rows run once (the buffers are made for them), 70 in eight runs of 8 or 9."""
    profile = {"x": ProfileRange((8, 3, 1024, 1024), (32, 3, 1024, 1024), (64, 3, 1024, 1024))}
    for batch, runs in ((12, [12]), (70, [8, 9, 9, 9, 8, 9, 9, 9])):
        plan = runtime.plan_call([profile], {"x": (batch, 3, 1024, 1024)}, 12 << 20, 16 << 20, 64 << 20)
        assert [stop - start for start, stop in plan.chunks] == runs and plan.buffer_rows == max(8, *runs)


def test_a_batch_between_profiles_runs_on_one_whose_smallest_batch_it_reaches():
    small, large = {"x": ProfileRange((1, 8), (4, 8), (8, 8))}, {"x": ProfileRange((65, 8), (128, 8), (256, 8))}
    plan = runtime.plan_call([small, large], {"x": (30, 8)}, 32, 16 << 20, 64 << 20)
    assert plan.profile == 0 and [stop - start for start, stop in plan.chunks] == [8, 8, 8, 6]
    with pytest.raises(ValueError, match="a batch of 30 is under the smallest batch of every optimization profile"):
        runtime.plan_call([large], {"x": (30, 8)}, 32, 16 << 20, 64 << 20)


def test_stream_rows_stay_within_the_profile():
    assert runtime.stream_rows(8448, 1, 100000, 32 << 20) == 3971
    assert runtime.stream_rows(4, 1, 100000, 32 << 20) == 100000
    assert runtime.stream_rows(1 << 30, 1, 100000, 32 << 20) == 1
    assert runtime.stream_rows(1 << 30, 16, 100000, 32 << 20) == 16


def test_split_rows_for_the_fill_threads():
    assert runtime.split_rows(3971, 8448, 8) == runtime.even_ranges(3971, 8)
    assert runtime.split_rows(10, 100, 8) == [(0, 10)]            # 1 KB: not worth a thread
    assert runtime.split_rows(3, 2 << 20, 8) == [(0, 1), (1, 2), (2, 3)]
    assert runtime.split_rows(1024, 8448, 16) == runtime.even_ranges(1024, 4)   # 8.6 MB: four parts of 2 MB
    assert runtime.even_ranges(10, 3) == [(0, 3), (3, 6), (6, 10)]
