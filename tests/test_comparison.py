"""scripts/trtkit_steps/comparison.py: the verification gate."""
import pytest


def test_a_nan_output_fails_verification_in_any_position(tmp_path):
    """max() passes over a NaN that is not first: an output that is NaN must fail the gate wherever it comes."""
    from trtkit_steps.comparison import gate
    from trtkit_steps.errors import VerificationFailed
    errors = {"a": {"max_abs_err": 0.0, "max_rel_err": 0.0}, "b": {"max_abs_err": float("nan"), "max_rel_err": 0.0}}
    with pytest.raises(VerificationFailed, match="differs from Keras by nan"):
        gate("model.onnx", errors, 1e-5)
    assert gate("model.onnx", {"a": {"max_abs_err": 0.0}, "b": {"max_abs_err": 2e-6}}, 1e-5)["max_abs_err"] == 2e-6
