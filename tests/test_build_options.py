"""The build options declared once in the contract: the CLI, the plan, plan.json and reproduce.sh all follow it."""
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from trtkit import build_options
from trtkit.cli import app
from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan
from trtkit_steps import contract


def _parsed(args: list[str]) -> dict:
    """The build settings the real command line makes of args (click parses; nothing runs)."""
    build = get_command(app).commands["build"]     # type: ignore[attr-defined]
    with build.make_context("build", ["model.h5", "--tag", "t", *args]) as ctx:
        return build_options.parse({name: getattr(value, "value", value) for name, value in ctx.params.items()})


def _away_from_defaults(tmp_path: Path) -> dict:
    """A value for every declared option that is not its default."""
    (tmp_path / "s.npz").write_bytes(b"")
    (tmp_path / "calib").mkdir()
    (tmp_path / "t.cache").write_bytes(b"")
    return {"precision": "int8", "io_precision": "fp16", "tf32": True,
            "shapes": {"x": [1, 8, 64], "y": [[1, 3], [8, 3], [64, 3]]},
            "sample_data": tmp_path / "s.npz", "calib_data": tmp_path / "calib", "timing_cache": tmp_path / "t.cache",
            "strict_timing_cache": True, "typical_batch": 64, "exact_batches": [1, 64], "optimization_level": 5,
            "precision_recipe": "rewrite",
            "unroll_lstm": True, "atol": 0.25, "workspace": 3 << 30, "opset": 13, "seed": 7,
            "disabled_tactic_sources": ["CUBLAS", "CUDNN"]}


def test_every_declared_option_is_a_build_option_with_its_default():
    build = get_command(app).commands["build"]     # type: ignore[attr-defined]
    params = {p.name: p for p in build.params}
    for option in contract.BUILD_OPTIONS:
        param = params[build_options.param_name(option)]
        assert option.flag in param.opts and param.help == option.help
    assert _parsed([]) == contract.option_defaults()


def test_reproduce_arguments_give_back_the_same_settings(tmp_path):
    """Every option, away from its default, through reproduce.sh's arguments and the real parser again."""
    settings = _away_from_defaults(tmp_path)
    assert set(settings) == set(contract.OPTIONS_BY_KEY), "the test gives every declared option a value"
    assert settings != contract.option_defaults()
    assert _parsed(build_options.arguments(settings)) == settings
    defaults = contract.option_defaults()
    assert _parsed(build_options.arguments(defaults)) == defaults


def test_command_line_values_are_checked_by_their_kind(tmp_path):
    for args, message in ((["--exact-batches", "0"], "--exact-batches"), (["--workspace", "lots"], "workspace"),
                          (["--atol", "nan"], "--atol"), (["--disable-tactic-sources", "cu blas"], "tactic"),
                          (["--shapes", "x:3/2/1"], "MIN <= OPT <= MAX")):
        with pytest.raises(typer.BadParameter, match=message):
            _parsed(args)


def test_an_option_set_without_the_one_it_needs_is_refused_on_both_sides():
    with pytest.raises(typer.BadParameter, match="--strict-timing-cache needs --timing-cache FILE"):
        _parsed(["--strict-timing-cache"])
    values = {**contract.option_defaults(), "strict_timing_cache": True}
    assert contract.bad_option_values(values) == ["strict_timing_cache"], "plan.json is checked the same way"
    assert not contract.bad_option_values({**values, "timing_cache": "/trtkit/data/timing.cache"})


def test_plan_json_and_the_manifest_come_from_the_settings(tmp_path):
    settings = _away_from_defaults(tmp_path)
    plan = BuildPlan(model=ModelRef(tmp_path / "m.h5", "h5"), image="i:t", settings=settings)
    sent = plan.container_plan("engine")
    assert sent["sample_data"] == f"{contract.DATA_DIR}/sample.npz"
    assert sent["calib_data"] == f"{contract.DATA_DIR}/calib"
    assert not contract.bad_option_values(sent) and set(sent) == set(contract.PLAN_KEYS)
    assert plan.options()["timing_cache"] == str(tmp_path / "t.cache") and plan.options()["seed"] == 7


def test_an_unknown_setting_is_refused_not_dropped(tmp_path):
    with pytest.raises(TypeError, match="precison"):
        BuildPlan(model=ModelRef(tmp_path / "m.h5", "h5"), image="i:t", settings={"precison": "fp16"})
