"""An artifact's outputs against the reference: errors per output, the tolerance, and the verdict (gate)."""
import math
import os

import numpy as np

from trtkit_steps.errors import StepError, VerificationFailed
from trtkit_steps.events import emit
from trtkit_steps.storage import save_arrays


def compare(expected, actual):
    """Largest absolute and relative error of actual against expected, per output."""
    report = {}
    for name, ref in expected.items():
        if name not in actual:
            raise StepError("output %r is missing from the artifact's outputs %s" % (name, sorted(actual)))
        got = np.asarray(actual[name], dtype=np.float64).reshape(np.shape(ref))
        ref = np.asarray(ref, dtype=np.float64)
        with np.errstate(invalid="ignore"):   # infinities: inf - inf and inf / inf are NaN
            diff = np.where(got == ref, 0.0, np.abs(got - ref))   # the same infinity is no error
            report[name] = {
                "max_abs_err": float(diff.max()) if diff.size else 0.0,
                "max_rel_err": float((diff / np.maximum(np.abs(ref), 1e-12)).max()) if diff.size else 0.0,
            }
    return report


# Exported graphs (ONNX, frozen GraphDef) compute what Keras computes, in FP32.
EXPORT_ATOL = 1e-5


def tolerance(plan, default, expected):
    """--atol when given. Else the artifact kind's default (None: report, gate nothing), times the largest finite
    Keras output where that is past 1: float32 and float16 keep significant digits, not decimal places (a model of
    prices near 2.4e5 differed from Keras by 0.016 through ONNX Runtime, 6e-8 of its outputs, and failed 1e-5)."""
    if plan["atol"] is not None:
        return plan["atol"]
    if default is None:
        return None
    finite = [np.abs(np.asarray(v, dtype=np.float64)) for v in expected.values()]
    return default * max([float(v[np.isfinite(v)].max()) for v in finite if np.isfinite(v).any()] + [1.0])


def worst_error(errors):
    """The largest max_abs_err of {output: errors}, 0.0 for none; NaN when any output's is NaN (max() would pass
    over it where it is not first)."""
    values = [e["max_abs_err"] for e in errors.values()]
    return float("nan") if any(math.isnan(v) for v in values) else max(values, default=0.0)


def gate(artifact, errors, atol, evidence_dir=None, inputs=None, expected=None, actual=None, passed=None):
    """Record errors; fail when any output misses atol (atol None = report only).

    passed: a verdict already reached by the comparison (Polygraphy's), else worst <= atol decides.
    """
    worst = worst_error(errors)
    if passed is None:
        passed = atol is None or worst <= atol
    result = {"artifact": artifact, "outputs": errors, "max_abs_err": worst, "atol": atol, "passed": passed}
    emit("verified", **result)
    if not passed:
        if evidence_dir is not None:
            if not os.path.isdir(evidence_dir):
                os.makedirs(evidence_dir)
            save_arrays(os.path.join(evidence_dir, "inputs.npz"), inputs)
            save_arrays(os.path.join(evidence_dir, "expected.npz"), expected)
            save_arrays(os.path.join(evidence_dir, "actual.npz"), actual)
        raise VerificationFailed(
            "%s differs from Keras by %.3g, above the tolerance %.3g" % (artifact, worst, atol),
            details=result)
    return result
