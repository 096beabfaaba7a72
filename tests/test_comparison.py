"""scripts/trtkit_steps/comparison.py: the verification gate."""
import pytest


def test_a_nan_output_fails_verification_in_any_position(tmp_path):
    """max() passes over a NaN that is not first: an output that is NaN must fail the gate wherever it comes."""
    from trtkit_steps.comparison import gate
    from trtkit_steps.errors import VerificationFailed
    errors = {"a": {"max_abs_err": 0.0, "max_rel_err": 0.0}, "b": {"max_abs_err": float("nan"), "max_rel_err": 0.0}}
    with pytest.raises(VerificationFailed, match="differs from Keras by nan"):
        gate("model.onnx", errors, {"a": 1e-5, "b": 1e-5})
    assert gate("model.onnx", {"a": {"max_abs_err": 0.0}, "b": {"max_abs_err": 2e-6}},
                {"a": 1e-5, "b": 1e-5})["max_abs_err"] == 2e-6


def test_the_default_tolerances_grow_with_each_outputs_values():
    """float32 and float16 keep significant digits: a default tolerance is relative to the output's largest finite
    value where that is past 1 (absolute below), output by output; --atol is absolute as given; INT8's None gates
    nothing."""
    import numpy as np

    from trtkit_steps.comparison import EXPORT_ATOL, tolerance
    default = {"atol": None}
    assert tolerance(default, 1e-2, {"y": np.array([0.5, -0.25])}) == {"y": 1e-2}
    assert tolerance(default, 1e-2, {"y": np.array([0.5, -3.0])})["y"] == pytest.approx(0.03, rel=1e-12)
    assert tolerance(default, 1e-2, {"y": np.array([200.0]), "z": np.array([-1000.0]), "p": np.array([0.3])}) == \
        {"y": 2.0, "z": 10.0, "p": 1e-2}
    assert tolerance(default, EXPORT_ATOL, {"price": np.array([[2.4e5], [2.5e5]], np.float32)}) == {"price": 2.5}
    assert tolerance(default, EXPORT_ATOL, {"y": np.array([np.inf, 3.0, np.nan])}) == {"y": 3 * EXPORT_ATOL}, \
        "an infinite output would make any error pass"
    assert tolerance(default, EXPORT_ATOL, {"y": np.array([np.inf]), "empty": np.zeros((0, 2))}) == \
        {"y": EXPORT_ATOL, "empty": EXPORT_ATOL}
    assert tolerance(default, None, {"y": np.array([200.0])}) == {"y": None}
    assert tolerance({"atol": 1e-3}, EXPORT_ATOL, {"y": np.array([200.0])}) == {"y": 1e-3}


def test_each_output_is_gated_by_its_own_tolerance_and_the_nearest_one_is_reported():
    """A probability beside a price: the price's tolerance (2.5) does not let a wrong probability through, and the
    record names the output that decided."""
    from trtkit_steps.comparison import deciding, gate
    from trtkit_steps.errors import VerificationFailed
    atol = {"price": 2.5, "probability": 1e-5}
    fine = {"price": {"max_abs_err": 0.02}, "probability": {"max_abs_err": 6e-6}}
    assert deciding(fine, atol) == ("probability", 6e-6, 1e-5, True)
    record = gate("model.onnx", fine, atol)
    assert (record["max_abs_err"], record["atol"], record["outputs"]["price"]["atol"]) == (6e-6, 1e-5, 2.5)
    with pytest.raises(VerificationFailed, match=r"by 0\.5 in output 'probability', above the tolerance 1e-05$"):
        gate("model.onnx", dict(fine, probability={"max_abs_err": 0.5}), atol)
    assert deciding({"y": {"max_abs_err": 0.3}, "z": {"max_abs_err": 0.1}}, {"y": None, "z": None}) == \
        ("y", 0.3, None, True), "INT8: reported (the largest error), not gated"


def test_the_worst_profile_is_the_one_gate_would_fail_first():
    """Of an engine's optimization profiles the one reported is the worst as gate() judges: a profile whose small
    output misses ranks above one whose price is further off in absolute terms but within its own tolerance."""
    from trtkit_steps.comparison import shortfall
    atol = {"price": 2.5, "probability": 1e-5}
    priced = {"price": {"max_abs_err": 2.0}, "probability": {"max_abs_err": 1e-6}}
    missed = {"price": {"max_abs_err": 0.01}, "probability": {"max_abs_err": 1e-3}}
    nan = {"price": {"max_abs_err": float("nan")}, "probability": {"max_abs_err": 0.0}}
    assert max([priced, missed], key=lambda errors: shortfall(errors, atol)) is missed
    assert max([missed, nan, priced], key=lambda errors: shortfall(errors, atol)) is nan
    assert shortfall(priced, atol) == (False, 0.8)
