"""The origin model's input and the build jobs the pure tests of the engine step's pieces start from."""
from trtkit_steps import contract
from trtkit_steps.trt import profiles, settings

LSTM_INPUT = {"name": "lstm_1_input", "shape": [None, 11, 192], "dtype": "float32"}


def _profiles(shapes, inputs=(LSTM_INPUT,)):
    return profiles.resolve_profiles(list(inputs), shapes)


def _job(precision="fp32", tf32=False, workspace=None, tactic_sources=None, shapes=None, strict=False,
         exact_batches=None, io_precision="fp32", recipe=None):
    plan = dict(contract.option_defaults(), precision=precision, tf32=tf32, workspace=workspace,
                disabled_tactic_sources=tactic_sources, strict_timing_cache=strict, exact_batches=exact_batches or [],
                io_precision=io_precision)
    build = settings.BuildSettings(plan, _profiles(shapes or {}))
    build.recipe = recipe or ("flags" if precision != "fp32" else "fp32")
    return settings.BuildJob(build, "/w/artifacts/model.onnx", "/w/artifacts/model.plan", None,
                             "/w/artifacts/timing.cache")
