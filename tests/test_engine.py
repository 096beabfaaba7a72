"""scripts/trtkit_steps/engine.py: the reference run through the profiles, and the verification."""
import numpy as np
import pytest
from engine_inputs import LSTM_INPUT, _job

from trtkit_steps import contract, engine  # noqa: F401  (the step imports every piece)
from trtkit_steps.errors import StepError, Unsupported
from trtkit_steps.storage import save_arrays
from trtkit_steps.trt import settings, trtexec


class _RowEngine:
    """A stand-in for an engine of the given profiles (pure logic): each output row is the input row doubled (with
    a batch-wide sum beside if asked); it refuses batches its profile does not take, as TensorRT does."""

    def __init__(self, low, high, total=False):
        self.low, self.high, self.total, self.batches = low, high, total, []

    def run(self, engine_path, batches, scratch, profile=0):
        self.batches += [len(batch["x"]) for batch in batches]
        assert all(self.low <= len(batch["x"]) <= self.high for batch in batches)
        return [dict({"y": batch["x"] * 2}, **({"total": np.float32(batch["x"].sum())} if self.total else {}))
                for batch in batches]


class _OffEngine(_RowEngine):
    """A _RowEngine whose outputs are `off` from the reference on the profiles in `profiles` (None: all)."""

    def __init__(self, off, profiles=None, major=8, has_loops=None):
        _RowEngine.__init__(self, 1, 100)
        self.off, self.profiles, self.major, self.has_loops = np.float32(off), profiles, major, has_loops

    def run(self, engine_path, batches, scratch, profile=0):
        shifted = self.profiles is None or profile in self.profiles
        return [{"y": out["y"] + (self.off if shifted else 0.0)} for out in super().run(engine_path, batches, scratch)]

    def compare(self, expected, actual, atol):
        from trtkit_steps.comparison import compare
        return compare(expected, actual), None


def _reference_work(tmp_path, **options):
    """A work folder holding the reference (x, y = 2x) and the settings of a build with `options`."""
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    (tmp_path / contract.ARTIFACTS).mkdir()
    save_arrays(str(tmp_path / contract.ARTIFACTS / contract.REFERENCE_INPUTS), {"x": x})
    save_arrays(str(tmp_path / contract.ARTIFACTS / contract.REFERENCE_OUTPUTS), {"y": x * 2})
    return x, settings.BuildSettings(dict(contract.option_defaults(), **options),
                                     {"x": {"min": [1, 3], "opt": [8, 3], "max": [100, 3]}})


def _reference_through(low, high, rows=8, total=False):
    inputs = {"x": np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)}
    fake = _RowEngine(low, high, total)
    profile = {"x": {"min": [low, 3], "opt": [low, 3], "max": [high, 3]}}
    return inputs, fake, engine.run_reference(fake, "model.plan", inputs, profile, "scratch")


def test_the_reference_runs_as_it_is_where_the_profile_takes_it():
    inputs, fake, outputs = _reference_through(1, 100000, total=True)
    assert fake.batches == [8]
    np.testing.assert_array_equal(outputs["y"], inputs["x"] * 2)
    assert outputs["total"] == inputs["x"].sum()   # an output without the batch first stays as the engine gave it


@pytest.mark.parametrize("low, high, batches", [
    (1, 1, [1] * 8),       # --shapes x:1/1/1
    (3, 3, [3, 3, 3]),     # rows 6 and 7 run beside rows 0 again
    (64, 64, [64]),        # the reference's rows repeated up to the smallest batch
    (2, 5, [5, 5]),
])
def test_the_reference_runs_in_batches_the_profile_takes(low, high, batches):
    inputs, fake, outputs = _reference_through(low, high)
    assert fake.batches == batches
    np.testing.assert_array_equal(outputs["y"], inputs["x"] * 2)


def test_an_output_without_the_batch_first_cannot_be_verified_in_pieces():
    with pytest.raises(StepError, match="total .* does not have the batch first"):
        engine.run_reference(_RowEngine(1, 1, total=True), "model.plan", {"x": np.ones((8, 3), np.float32)},
                             {"x": {"min": [1, 3], "opt": [1, 3], "max": [1, 3]}}, "scratch")


@pytest.mark.parametrize("off", [0.5, float("nan")])
def test_verification_gates_on_the_worst_profile(tmp_path, capsys, off):
    """Each profile runs the reference on its own (profile 1: batch 1 at a time); one profile off fails the build,
    with that profile's outputs as the evidence. A NaN profile is the worst (max() passed over it)."""
    from trtkit_steps.errors import VerificationFailed
    from trtkit_steps.storage import load_arrays

    x, job_settings = _reference_work(tmp_path, exact_batches=[1, 64])
    fake = _OffEngine(off, profiles=[1])
    with pytest.raises(VerificationFailed, match="differs from Keras by %.3g" % off) as failed:
        engine._verify(fake, str(tmp_path), "model.plan", {"atol": 0.1}, job_settings)
    assert "--precision-recipe" not in str(failed.value), "an FP32 engine has no recipe to change"
    assert fake.batches == [8] + [1] * 8 + [64]
    np.testing.assert_array_equal(load_arrays(str(tmp_path / contract.EVIDENCE / "actual.npz"))["y"], x * 2 + off)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_11_builds_the_verified_rewrite_with_no_precision_flags(precision, tmp_path):
    """TensorRT 11 without a TensorRT 11: the recipe is the rewrite, trtexec gets no precision flag, and the ONNX
    it builds is the reduced-precision model the onnx_precision step verified (contract.REDUCED_ONNX)."""
    recipe, why = settings.choose_recipe("11.5.0", precision, "auto")
    assert recipe == "rewrite" and "strongly typed" in why
    with pytest.raises(Unsupported, match="no FP16/INT8 builder flags"):
        settings.choose_recipe("11.5.0", precision, "flags")
    plan = dict(contract.option_defaults(), precision=precision, cache_dir=str(tmp_path / "cache"))
    (tmp_path / contract.ARTIFACTS).mkdir()
    with pytest.raises(Unsupported, match=contract.REDUCED_ONNX[precision]):
        engine._build_job(plan, str(tmp_path), {"inputs": [LSTM_INPUT]}, _job(precision, recipe=recipe).settings,
                          "11.5.0", "H100", ("9", "0"))
    (tmp_path / contract.ARTIFACTS / contract.REDUCED_ONNX[precision]).write_bytes(b"onnx")
    job, _ = engine._build_job(plan, str(tmp_path), {"inputs": [LSTM_INPUT]},
                               _job(precision, recipe=recipe).settings, "11.5.0", "H100", ("9", "0"))
    assert job.onnx.endswith(contract.REDUCED_ONNX[precision]) and job.calibration is None, "Q/DQ needs no calibrator"
    args = trtexec.trtexec_build_args("trtexec", (11, 5, 0), job, "e")
    assert "--onnx=" + job.onnx in args
    assert not [a for a in args if a in ("--noTF32", "--fp16", "--int8", "--stronglyTyped") or a.startswith("--calib")]


@pytest.mark.parametrize("exported, trt_major, has_loops", [(True, 8, True), (False, 8, None), (True, 8, False),
                                                          (True, 10, True)])
def test_a_builder_flag_engine_that_misses_names_the_rewrite(tmp_path, exported, trt_major, has_loops):
    """On TensorRT 8.6 the flags let TensorRT run a Keras 2 masked LSTM's Loop in FP16 (0.118 off); the one-line
    error says which recipe would choose the types, how to make its model when the export has none, and, below
    TensorRT 10, that the rewrite builds no Loop there (the H100 made no engine of either masked LSTM): unless the
    network has no loop (EfficientNetB0's engine missed too, and got that sentence for nothing)."""
    from trtkit_steps.errors import VerificationFailed

    _, job_settings = _reference_work(tmp_path, precision="fp16")
    if exported:
        (tmp_path / contract.ARTIFACTS / contract.REDUCED_ONNX["fp16"]).write_bytes(b"onnx")
    job_settings.recipe = "flags"
    with pytest.raises(VerificationFailed) as failed:
        engine._verify(_OffEngine(0.118, major=trt_major, has_loops=has_loops), str(tmp_path), "model.plan",
                       {"atol": 0.01}, job_settings)
    message = str(failed.value)
    assert message.startswith("model.plan differs from Keras by 0.118") and "\n" not in message
    assert "--precision-recipe rewrite builds model.fp16.onnx" in message
    assert ("export with --precision fp16" in message) is not exported
    assert ("ONNX Loops: for those, --precision fp32 or a TensorRT 10" in message) is \
        (trt_major < 10 and has_loops is not False)
    assert failed.value.exit_code == contract.EXIT_VERIFY_FAILED


@pytest.mark.parametrize("precision, counts, warned", [
    ("fp16", {"fp16": 60, "fp32": 2}, []),
    ("fp32", {"fp32": 60}, []),
    ("fp16", None, []),                                       # trtexec, or a TensorRT without an inspector
    ("fp16", {"fp16": 1, "fp32": 60}, ["60 of the engine's 61 layers run in FP32 despite --precision fp16"]),
    ("int8", {"fp16": 12}, ["no engine layer runs in INT8 (12 FP16)"]),
    ("int8", {"int8": 50, "fp16": 3}, [])])
def test_the_engines_layers_are_held_against_the_precision_asked(precision, counts, warned):
    """On the H100 the small CNN's INT8 flags engine had FP16's error to the digit (TensorRT chose FP16 kernels), and
    TensorRT 8.6's rewrite made ResNet50's FP16 engine FP32-sized: each is now a warning, from the engine's layers."""
    warnings = engine._precision_warnings(precision, counts)
    assert len(warnings) == len(warned) and all(w.startswith(start) for w, start in zip(warnings, warned))


class _RecipeEngine(_OffEngine):
    """A TensorRT 8.6 stand-in (pure logic) whose engines are off by `offs[recipe]`: build() writes the engine and
    the timing cache a real build leaves, and fails for a recipe whose offset is an exception."""

    name, version = "fake", "8.6.0"

    def __init__(self, offs):
        _OffEngine.__init__(self, 0.0, major=8, has_loops=True)
        self.offs, self.built = offs, []

    def build(self, job):
        self.built.append(job.settings.recipe)
        if isinstance(self.offs[job.settings.recipe], Exception):
            raise self.offs[job.settings.recipe]
        self.off = np.float32(self.offs[job.settings.recipe])
        for path in (job.engine, job.save_timing_cache):
            with open(path, "wb") as f:
                f.write(job.settings.recipe.encode())

    def layer_precisions(self, engine_path):
        return None


def _run_engine_step(tmp_path, monkeypatch, capsys, backend, precision_recipe="auto"):
    """engine.main on a work folder of the (x, y = 2x) reference, FP16, model.fp16.onnx beside model.onnx: its
    events by kind, and its error (None when it passed)."""
    import json

    from trtkit_steps.errors import StepError as AnyStepError
    _reference_work(tmp_path)
    for name in ("model.onnx", contract.REDUCED_ONNX["fp16"]):
        (tmp_path / contract.ARTIFACTS / name).write_bytes(b"onnx")
    plan = dict(contract.option_defaults(), model="m.h5", model_format="h5", trust_model=False, target="engine",
                mode="build", bench=None, cache_dir=str(tmp_path / "cache"), precision="fp16",
                precision_recipe=precision_recipe, atol=0.01)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / contract.IO).write_text(json.dumps({"inputs": [{"name": "x", "shape": [None, 3],
                                                               "dtype": "float32"}]}))
    monkeypatch.setattr(engine.gpu, "device_info", lambda: ("H100", "9.0"))
    monkeypatch.setattr(engine, "select_backend", lambda: backend)
    error = None
    try:
        engine.main([str(tmp_path / "plan.json")])
    except AnyStepError as failed:
        error = failed
    events = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith(contract.EVENT_PREFIX):
            event = json.loads(line[len(contract.EVENT_PREFIX):])
            events.setdefault(event.pop("event"), []).append(event)
    return events, error


def test_auto_builds_the_rewrite_where_the_builder_flag_engine_misses(tmp_path, monkeypatch, capsys):
    """auto on TensorRT 8.6 builds with the flags; where that engine misses (a Keras 2 masked LSTM's, 0.118 on an
    H100) and the verified rewrite is there, the engine is built again from it and verified: the artifact is the
    rewrite's, the recipe event says why, and only the engine that passed is a verification."""
    backend = _RecipeEngine({"flags": 0.118, "rewrite": 0.001})
    events, error = _run_engine_step(tmp_path, monkeypatch, capsys, backend)
    assert error is None and backend.built == ["flags", "rewrite"]
    assert (tmp_path / contract.ARTIFACTS / "model.plan").read_bytes() == b"rewrite"
    assert [e["recipe"] for e in events["recipe"]] == ["flags", "rewrite"]
    assert events["recipe"][-1]["reason"].startswith("auto: the builder-flag engine differs from Keras by 0.118")
    assert events["recipe"][-1]["onnx"] == contract.REDUCED_ONNX["fp16"]
    assert [e["recipe"] for e in events["engine"]] == ["flags", "rewrite"]
    assert [(v["artifact"], v["passed"]) for v in events["verified"]] == [("model.plan", True)]
    assert any("building the engine from model.fp16.onnx" in w["message"] for w in events["warning"])
    assert [s["step"] for s in events["step_end"]] == ["engine-build", "verify-engine", "engine-rewrite",
                                                       "verify-rewrite"]
    assert not (tmp_path / contract.EVIDENCE).exists()


@pytest.mark.parametrize("rewrite, says", [
    (0.5, "the rewrite, tried instead: model.plan differs from Keras by 0.5"),
    (StepError("TensorRT 8.6.0 could not build an engine from model.fp16.onnx"),
     "the rewrite, tried instead: TensorRT 8.6.0 could not build an engine"),
])
def test_when_the_rewrite_fails_too_the_error_names_both(tmp_path, monkeypatch, capsys, rewrite, says):
    """One line, the verification's exit code, and evidence kept (the rewrite's engine outputs, or the flags' when
    the rewrite made no engine): the build stops as a miss does."""
    events, error = _run_engine_step(tmp_path, monkeypatch, capsys, _RecipeEngine({"flags": 0.118,
                                                                                   "rewrite": rewrite}))
    message = str(error)
    assert message.startswith("the builder-flag engine differs from Keras by 0.118") and says in message
    assert "\n" not in message and error.exit_code == contract.EXIT_VERIFY_FAILED
    assert (tmp_path / contract.EVIDENCE / "actual.npz").is_file()
    assert "artifact" not in events


@pytest.mark.parametrize("precision_recipe", ["flags", "rewrite"])
def test_an_asked_recipe_is_built_once(tmp_path, monkeypatch, capsys, precision_recipe):
    """--precision-recipe flags or rewrite means that recipe: a miss stops the build, with the hint for flags."""
    backend = _RecipeEngine({"flags": 0.118, "rewrite": 0.118})
    _, error = _run_engine_step(tmp_path, monkeypatch, capsys, backend, precision_recipe)
    assert backend.built == [precision_recipe]
    assert ("--precision-recipe rewrite builds" in str(error)) is (precision_recipe == "flags")


def test_the_host_gives_autos_second_engine_its_own_deadline():
    """The rewrite's build and check get deadlines only in plans that may run them (auto, reduced precision)."""
    plan = {"target": "engine", "mode": "build", "bench": None, "model_format": "onnx", "precision": "fp16",
            "precision_recipe": "auto"}
    assert contract.steps(plan)[-2:] == list(contract.REWRITE_STEPS) == ["engine-rewrite", "verify-rewrite"]
    assert not set(contract.REWRITE_STEPS) & set(contract.steps(dict(plan, precision_recipe="flags")))
    assert not set(contract.REWRITE_STEPS) & set(contract.steps(dict(plan, precision="fp32")))
