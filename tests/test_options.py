"""toolkit/options.py: the options' parsing and the image references."""
import pytest
import typer

from trtkit.options import (
    parse_batch_set,
    parse_gpus,
    parse_shapes,
    parse_size,
    parse_tactic_sources,
)
from trtkit.plan import GpuRequest


def test_parse_shapes_accepts_batches_and_full_shapes():
    assert parse_shapes(["lstm_1_input:1/1024/100000"]) == {"lstm_1_input": [1, 1024, 100000]}
    assert parse_shapes(["a:1x3x8/4x3x8/16x3x8"]) == {"a": [[1, 3, 8], [4, 3, 8], [16, 3, 8]]}
    assert parse_shapes(["scope/in:0:1/2/3"]) == {"scope/in:0": [1, 2, 3]}


@pytest.mark.parametrize("bad", ["x", "x:1/2", "x:4/2/8", "x:0/1/2", "x:a/b/c", ":1/2/3"])
def test_parse_shapes_rejects(bad):
    with pytest.raises(typer.BadParameter):
        parse_shapes([bad])


@pytest.mark.parametrize("specs, message", [
    (["a:1/2/3", "b:1/2/3", "a:4/5/6"], "--shapes gives input 'a' twice"),
    (["a:1x11/2x11x192/3x11x192"], "input 'a' must all be batch sizes or all full shapes of the same rank"),
    (["a:1x11/2x11x192/3"], "input 'a' must all be batch sizes or all full shapes of the same rank"),
    (["a:1/2x11/3x11"], "input 'a' must all be batch sizes or all full shapes of the same rank"),
])
def test_parse_shapes_refuses_repeats_and_mixed_ranks(specs, message):
    with pytest.raises(typer.BadParameter, match=message):
        parse_shapes(specs)


def test_parse_gpus_and_size():
    assert parse_gpus("ALL") == GpuRequest("all")
    assert parse_gpus("0, 1") == GpuRequest("ids", ("0", "1"))
    with pytest.raises(typer.BadParameter):
        parse_gpus("first")
    assert parse_size("2G", "size", 1 << 20, 1 << 40) == 2 << 30
    assert parse_size("512MiB", "size", 1, 1 << 40) == 512 << 20
    with pytest.raises(typer.BadParameter):
        parse_size("lots", "size", 1, 1 << 40)
    for too_small in ("0", "1", "1023K"):     # under the 1 MiB the message names as the smallest
        with pytest.raises(typer.BadParameter, match=r"out of range \(1 MiB to 1024 GiB\)"):
            parse_size(too_small, "size", 1 << 20, 1 << 40)


def test_tactic_sources_to_leave_out():
    assert parse_tactic_sources("cublas, CUBLAS_LT,cudnn") == ["CUBLAS", "CUBLAS_LT", "CUDNN"]
    for bad in ("", ",", "-CUBLAS", "cu blas"):
        with pytest.raises(typer.BadParameter):
            parse_tactic_sources(bad)


def test_exact_batches_are_distinct_and_ascending():
    assert parse_batch_set("64,1, 64", "--exact-batches", 8) == [1, 64]
    for bad in (",", "0", "1,x", ",".join(map(str, range(1, 10)))):
        with pytest.raises(typer.BadParameter, match="--exact-batches"):
            parse_batch_set(bad, "--exact-batches", 8)


