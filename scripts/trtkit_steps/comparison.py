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
    """{output: the largest absolute error allowed there, or None: reported, not gated}. --atol when given. Else
    the artifact kind's default times the output's largest finite |value| where that is past 1: float32 and
    float16 keep significant digits, not decimal places (a model of prices near 2.4e5 differed from Keras by 0.016
    through ONNX Runtime, 6e-8 of its outputs, and failed 1e-5). Each output by its own values, so a probability
    beside a price is not judged by the price's tolerance."""
    return dict((name, _tolerance(plan["atol"], default, values)) for name, values in expected.items())


def _tolerance(atol, default, values):
    if atol is not None or default is None:
        return atol
    values = np.abs(np.asarray(values, dtype=np.float64))
    finite = values[np.isfinite(values)]       # an infinity would open the gate to any error
    return default * max(float(finite.max()) if finite.size else 0.0, 1.0)


def deciding(errors, atol):
    """(output, its error, its tolerance, passed): the output nearest its tolerance or furthest past it (NaN
    first), and whether every output is within its own. Outputs without a tolerance (INT8) pass, the largest error
    deciding which one is reported."""
    if not errors:
        return None, 0.0, None, True
    passed = all(atol[name] is None or errors[name]["max_abs_err"] <= atol[name] for name in errors)   # NaN fails
    name = max(sorted(errors), key=lambda output: _closeness(errors[output]["max_abs_err"], atol[output]))
    return name, errors[name]["max_abs_err"], atol[name], passed


def shortfall(errors, atol):
    """The worst of several comparisons of one artifact (its optimization profiles) has the largest: a miss first,
    then how near its tolerance the deciding output is (NaN past everything)."""
    _, error, limit, passed = deciding(errors, atol)
    return not passed, _closeness(error, limit)


def _closeness(error, limit):
    """error as a share of its tolerance (the error itself where there is none: INT8), NaN past everything."""
    if math.isnan(error):
        return math.inf
    if limit is None:
        return error
    return error / limit if limit > 0 else (math.inf if error > 0 else 0.0)


def worst_error(errors):
    """The largest max_abs_err of {output: errors}, 0.0 for none; NaN when any output's is NaN (max() would pass
    over it where it is not first)."""
    values = [e["max_abs_err"] for e in errors.values()]
    return float("nan") if any(math.isnan(v) for v in values) else max(values, default=0.0)


def gate(artifact, errors, atol, evidence_dir=None, inputs=None, expected=None, actual=None, passed=None):
    """Record errors; fail when an output misses its tolerance (atol: tolerance()'s {output: atol or None}).

    passed: a verdict already reached by the comparison (Polygraphy's), else each output's own tolerance decides.
    The record's max_abs_err and atol are the deciding output's (see deciding()), each output's are under
    "outputs".
    """
    _, error, limit, _ = deciding(errors, atol)
    passed = verdict(errors, atol, passed)
    outputs = dict((output, dict(errors[output], atol=atol[output])) for output in errors)
    result = {"artifact": artifact, "outputs": outputs, "max_abs_err": error, "atol": limit, "passed": passed}
    emit("verified", **result)
    if not passed:
        if evidence_dir is not None:
            keep_evidence(evidence_dir, inputs, expected, actual)
        raise VerificationFailed(miss(artifact, errors, atol), details=result)
    return result


def keep_evidence(evidence_dir, inputs, expected, actual):
    """A failed verification's arrays, for the host to keep (contract.EVIDENCE_FILES)."""
    if not os.path.isdir(evidence_dir):
        os.makedirs(evidence_dir)
    save_arrays(os.path.join(evidence_dir, "inputs.npz"), inputs)
    save_arrays(os.path.join(evidence_dir, "expected.npz"), expected)
    save_arrays(os.path.join(evidence_dir, "actual.npz"), actual)


def verdict(errors, atol, passed=None):
    """Whether the errors pass as gate() judges them: by a comparison's own verdict (Polygraphy's) where it gave
    one, else by each output's tolerance."""
    return deciding(errors, atol)[3] if passed is None else passed


def miss(artifact, errors, atol):
    """The one line that says how far artifact missed (the deciding output named where there are several)."""
    name, error, limit, _ = deciding(errors, atol)
    where = " in output %r" % name if len(errors) > 1 else ""
    return "%s differs from Keras by %.3g%s, above the tolerance %.3g" % (artifact, error, where, limit)
