"""toolkit/build_cache.py: what a build's key holds."""
from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan
from trtkit.targets import unused_options


def test_a_change_to_a_step_script_is_a_new_build_key(tmp_path, monkeypatch):
    """Finished builds are reused by key; a tree whose in-container steps changed under one version must not
    reuse a build its old steps made."""
    import shutil

    from trtkit import build_cache, resources
    from trtkit.modelfile import ModelRef
    from trtkit.plan import BuildPlan
    from trtkit.toolchain import Toolchain

    steps = tmp_path / "scripts"
    shutil.copytree(resources.scripts_dir(), steps)
    (tmp_path / "model.h5").write_bytes(b"h5")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="trtkit/standin:19.07-py3")
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    uncached = resources.steps_digest.__wrapped__
    monkeypatch.setattr(resources, "steps_digest", lambda: uncached(steps))
    first = build_cache.key(plan, "onnx", toolchain)
    assert build_cache.key(plan, "onnx", toolchain) == first
    script = steps / "trtkit_steps" / "onnx_lstm.py"
    script.write_text(script.read_text() + "\n# another step\n")
    assert build_cache.key(plan, "onnx", toolchain) != first


def test_options_only_tensorrt_reads_leave_an_onnx_or_frozen_builds_key_alone(tmp_path):
    """A project's matrix crosses targets with precisions and TensorRT settings: the settings only engines read leave
    an onnx or frozen build as it is, so their cells are one finished build, reused. --precision fp16 writes
    model.fp16.onnx into an onnx build (not a frozen one), so it enters that key."""
    import dataclasses

    from trtkit import build_cache
    from trtkit.toolchain import Toolchain

    for name in ("model.h5", "calib.npz", "timing.cache"):
        (tmp_path / name).write_bytes(name.encode())
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="trtkit/standin:19.07-py3")
    tensorrt = dataclasses.replace(plan, settings={
        "tf32": True, "workspace": 1 << 30, "timing_cache": tmp_path / "timing.cache", "strict_timing_cache": True,
        "typical_batch": 64, "exact_batches": [1, 64], "optimization_level": 5, "io_precision": "fp16",
        "disabled_tactic_sources": ["CUBLAS"], "precision_recipe": "flags"})
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    half = dataclasses.replace(plan, settings={"precision": "fp16", "calib_data": tmp_path / "calib.npz"})
    assert build_cache.key(half, "onnx", toolchain) != build_cache.key(plan, "onnx", toolchain)
    assert build_cache.key(half, "frozen", toolchain) == build_cache.key(plan, "frozen", toolchain)
    for target in build_cache.REUSABLE_TARGETS:
        assert len(unused_options(tensorrt, target)) == 10        # every one of them is unused by this target
        assert build_cache.key(tensorrt, target, toolchain) == build_cache.key(plan, target, toolchain)
        assert build_cache.key(dataclasses.replace(plan, settings={"seed": 1}), target, toolchain) != \
            build_cache.key(plan, target, toolchain)
