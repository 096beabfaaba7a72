"""scripts/trtkit_steps/contract.py: the plan, the stages and the events, as both sides read them."""
import json
from pathlib import Path

import pytest

from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan
from trtkit_steps import contract, event_shapes


def test_the_events_of_real_builds_pass():
    """Manifests and `trtkit bench --json` output of real runs (docs/gpu-proof): the checks keep what steps emit."""
    repo = Path(__file__).resolve().parents[1]
    found = [json.loads(p.read_text()) for p in sorted(repo.glob("docs/**/*.json"))]
    events = [("bench", f) for f in found if isinstance(f, dict) and "rows" in f]
    for m in (f for f in found if isinstance(f, dict) and "names" in f):
        events += [("names", m["names"]), ("engine", m.get("engine")), ("bench", m.get("bench"))]
        events += [("step_end", s) for s in m["steps"]] + [("verified", v) for v in m["verification"]]
    assert {kind for kind, fields in events if fields} == {"names", "engine", "bench", "step_end", "verified"}
    for kind, fields in events:
        assert fields is None or event_shapes.check_event({**fields, "event": kind}) is not None, (kind, fields)


def test_the_host_knows_every_step_a_stage_times():
    """contract.STAGE_STEPS against the step("...") calls in scripts/: a step missing there would never get its
    own deadline."""
    import ast
    timed: dict[str, list[str]] = {}
    for path in sorted(Path(contract.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "step" and node.args:
                timed.setdefault(path.stem, []).append(node.args[0].value)
    assert timed == {stage: list(names) for stage, names in contract.STAGE_STEPS.items()}
    plan = {"target": "engine", "mode": "build", "bench": {"batches": [1]}, "model_format": "h5", "precision": "fp32"}
    assert contract.steps(plan) == ["inspect", "freeze", "reference", "verify-frozen", "export", "verify-onnx",
                                    "engine-build", "verify-engine", "bench"]


def test_the_host_writes_exactly_the_plan_the_contract_reads(tmp_path):
    plan = BuildPlan(model=ModelRef(Path("/m.h5"), "h5"), image="i:t", settings={"sample_data": Path("/s.npy")})
    written = plan.container_plan("engine")
    assert tuple(written) == contract.PLAN_KEYS
    (tmp_path / "plan.json").write_text(json.dumps(written))
    assert contract.read_plan(str(tmp_path / "plan.json"))["sample_data"] == f"{contract.DATA_DIR}/sample.npy"
    (tmp_path / "plan.json").write_text(json.dumps(dict(written, surprise=1)))
    with pytest.raises(contract.PlanMismatch, match="unknown \\['surprise'\\]"):
        contract.read_plan(str(tmp_path / "plan.json"))


@pytest.mark.parametrize("target, bench, stages, outputs", [
    ("onnx", None, ["keras_stage", "onnx_stage"], ("model.onnx",)),
    ("frozen", None, ["keras_stage"], ("model.pb",)),
    ("frozen", {"batches": [1]}, ["keras_stage", "onnx_stage", "bench"], ("model.pb", "model.onnx")),
    ("engine", None, ["keras_stage", "onnx_stage", "engine"], ("model.onnx",)),
    ("tftrt", None, ["keras_stage", "onnx_stage", "tftrt"], ("model.pb", "model.onnx")),
])
def test_one_table_says_which_steps_run(target, bench, stages, outputs):
    plan = {"target": target, "mode": "build", "bench": bench, "model_format": "h5", "precision": "fp32"}
    assert contract.stages(plan) == stages and contract.keras_outputs(plan) == outputs
    assert contract.stages(dict(plan, mode="inspect")) == ["keras_stage"]


@pytest.mark.parametrize("model_format, target, stages", [
    ("onnx", "onnx", ["onnx_import"]),
    ("onnx", "engine", ["onnx_import", "engine"]),
    ("trtkit-output", "engine", ["engine"]),        # TensorRT and numpy alone: no TensorFlow in the image
])
def test_exported_models_skip_the_keras_stage(model_format, target, stages):
    assert contract.stages({"target": target, "mode": "build", "bench": None, "model_format": model_format,
                            "precision": "fp32"}) == stages


def test_plan_values_outside_their_declaration_are_refused(tmp_path):
    """read_plan checks every build option's value against the contract's declaration: the choices, bounds and
    kinds the host's options allow (a precision the steps do not know never reaches them)."""
    base = dict(contract.option_defaults(), model="/trtkit/model/m.h5", model_format="h5", trust_model=False,
                target="engine", mode="build", bench=None, cache_dir="/trtkit/work/cache")
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(base))
    assert contract.read_plan(str(path))["optimization_level"] == 3
    for key, value in (("precision", "bf16"), ("io_precision", "int8"), ("optimization_level", 6), ("tf32", 1),
                       ("exact_batches", [64, 1]), ("opset", None), ("sample_data", "/etc/passwd"),
                       ("disabled_tactic_sources", ["cublas"]), ("shapes", {"x": [1, 2]}), ("atol", float("nan"))):
        path.write_text(json.dumps(dict(base, **{key: value})))
        with pytest.raises(contract.PlanMismatch, match=f"invalid \\['{key}'\\]"):
            contract.read_plan(str(path))
