"""toolkit/commands/build.py: the build command's options, checked before the daemon."""
import inspect

import pytest
import typer

from trtkit.commands.build import build, plan_of
from trtkit.modelfile import HDF5_SIGNATURE


def build_values(model, **given) -> dict:
    """The build command's parameters at their defaults, as plan_of receives them, with given ones changed."""
    defaults = {name: getattr(p.default, "value", p.default) for name, p in inspect.signature(build).parameters.items()
                if name != "ctx"}
    return {**defaults, "model": model, "tag": "24.05-py3", **given}


@pytest.mark.parametrize("given, message", [
    ({"batch": "abc"}, "a batch size must be a whole number"),
    ({"iterations": -5}, "iterations"),
    ({"warmup": -1}, "warmup"),
])
def test_bench_options_are_checked_without_bench(tmp_path, given, message):
    h5 = tmp_path / "m.h5"
    h5.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    assert plan_of(build_values(h5)).bench is None
    assert plan_of(build_values(h5, bench=True)).bench is not None
    for bench in (False, True):
        with pytest.raises(typer.BadParameter, match=message):
            plan_of(build_values(h5, bench=bench, **given))


@pytest.fixture
def h5(tmp_path):
    path = tmp_path / "m.h5"
    path.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    return path


@pytest.mark.parametrize("args, says", [
    (["--image", "Bad Repo", "--tag", "1"], "not a valid image repository"),
    (["--image", "repo@sha256:abc"], "REPO@sha256:<64 hex digits>"),
    (["--image", "repo@sha256:" + "a" * 64, "--tag", "1"], "without --tag"),
    ([], "give the container tag"),
    (["--tag", "19.07-py3\n"], "is not a valid image tag"),
    (["--tag", "x", "--gpus", "\u0661"], "GPU indices"),
    (["--tag", "x", "--atol", "nan"], "--atol must be a number"),
    (["--tag", "x", "--atol", "-1"], "--atol must be a number"),
    (["--tag", "x", "--timeout", "inf"], "--timeout must be a number"),
    (["--tag", "x", "--shapes", "a:1/2/99999999999999"], "a batch size must be a whole number"),
    (["--tag", "x", "--shapes", "a:1x9999999x9999999/2x9999999x9999999/3x9999999x9999999"], "more than 2^40"),
    (["--tag", "x", "--shapes", "a:\u0661/2/3"], "must be a whole number"),
    (["--tag", "x", "--bench", "--batch", "1,99999999999999999999"], "a batch size must be a whole number"),
    (["--tag", "x", "--bench", "--batch", "1,1e9"], "a batch size must be a whole number"),
    (["--tag", "x", "--memory", "1k"], "memory limit '1k' is out of range"),
    (["--tag", "x", "--workspace", "9999999T"], "workspace"),
    (["--tag", "x", "--strict-timing-cache"], "--strict-timing-cache needs --timing-cache FILE"),
])
def test_absurd_input_is_a_usage_error(trtkit, h5, args, says):
    result = trtkit("build", h5, "--image", "trtkit/standin", *args) if "--image" not in args else \
        trtkit("build", h5, *args)
    assert result.returncode == 2, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert says in " ".join(result.stderr.split()), result.stderr
