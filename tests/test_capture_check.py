"""benchmarks/gpu_proof/capture_check.py's verdict (the GPU runs the engines; the rule is pure logic)."""
import json

from gpu_proof import capture_check

OFF = "trtkit.runtime: CUDA graphs are off for this engine (TensorRT cannot capture this engine's run: ...)"


def _verdict(capsys, said, stderr, worst=1e-6):
    passed = capture_check.verdict({"engine": "e"}, worst, 1e-4, said, stderr)
    return passed, json.loads(capsys.readouterr().out)


def test_an_engine_tensorrt_captured_has_nothing_to_check(capsys):
    passed, line = _verdict(capsys, [], "")
    assert passed is None and line["captured"]


def test_one_trtkit_warning_and_a_quiet_stderr_pass(capsys):
    passed, line = _verdict(capsys, [OFF], "")
    assert passed is True and not line["captured"] and not line["error_code_3_on_stderr"]


def test_tensorrts_error_code_3_on_stderr_a_warning_per_call_or_wrong_outputs_fail(capsys):
    error = "[E] 3: [executionContext.cpp::enqueueV3] Error Code 3: API Usage Error (... not stream capturable!)"
    assert _verdict(capsys, [OFF], error)[0] is False
    assert _verdict(capsys, [OFF, OFF], "")[0] is False
    assert _verdict(capsys, [OFF], "", worst=1.0)[0] is False
