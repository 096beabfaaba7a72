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


def test_the_default_tolerances_grow_with_the_outputs():
    """float32 and float16 keep significant digits: a default tolerance is relative to the largest finite Keras
    output where that is past 1 (absolute below); --atol is absolute as given; INT8's None gates nothing."""
    import numpy as np

    from trtkit_steps.comparison import EXPORT_ATOL, tolerance
    default = {"atol": None}
    assert tolerance(default, 1e-2, {"y": np.array([0.5, -0.25])}) == 1e-2
    assert abs(tolerance(default, 1e-2, {"y": np.array([0.5, -3.0])}) - 0.03) < 1e-12
    assert tolerance(default, 1e-2, {"y": np.array([200.0]), "z": np.array([-1000.0])}) == 10.0
    assert tolerance(default, EXPORT_ATOL, {"price": np.array([[2.4e5], [2.5e5]], np.float32)}) == 2.5
    assert tolerance(default, EXPORT_ATOL, {"y": np.array([np.inf, 3.0, np.nan])}) == 3 * EXPORT_ATOL, \
        "an infinite output would make any error pass"
    assert tolerance(default, EXPORT_ATOL, {"y": np.array([np.inf]), "empty": np.zeros((0, 2))}) == EXPORT_ATOL
    assert tolerance(default, None, {"y": np.array([200.0])}) is None
    assert tolerance({"atol": 1e-3}, EXPORT_ATOL, {"y": np.array([200.0])}) == 1e-3
