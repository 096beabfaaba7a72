"""The shapes of the events the steps print (`::trtkit::{json}` lines; contract.EVENT_PREFIX), written once.

Every field the host reads (report, manifest, triton, session, engine_check) is checked here with its type: a
model prints what it likes, and an event that passes must never make the host fail on a missing key. Standard
library only, Python 3.6-safe, like the contract.
"""
import math


def number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def real(value):
    """A number a float holds, NaN and infinity included: an output that is NaN has a NaN error."""
    if not number(value):
        return False
    try:
        float(value)
    except OverflowError:   # a 400-digit integer: no format string takes it
        return False
    return True


def finite(value):
    return real(value) and math.isfinite(value)


def optional(check):
    return lambda value: value is None or check(value)


def size(value):
    """A whole number a shape, a batch or a count can have."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 63


def text(value):
    return isinstance(value, str)


def flag(value):
    return isinstance(value, bool)


def mapping(value):
    return isinstance(value, dict)


def list_of(check, non_empty=False):
    return lambda value: isinstance(value, list) and (bool(value) or not non_empty) and all(check(v) for v in value)


def record(required, optional=None):
    """A dict with every required key passing its check, and each optional key, when present, passing its own."""
    optional = optional or {}
    return lambda value: isinstance(value, dict) and all(check(value.get(k)) for k, check in required.items()) \
        and all(check(value[k]) for k, check in optional.items() if k in value)


_SHAPE = list_of(optional(size))          # None: a dimension of unknown size
_NAMES = {"name": text, "keras_tensor": text, "frozen": text, "imported": text}
_INPUT = record(dict(_NAMES, shape=_SHAPE, dtype=text))
_OUTPUT = record(_NAMES, {"shape": _SHAPE, "dtype": text})     # both absent in outputs of older manifests
_PROFILE = record({which: list_of(size, non_empty=True) for which in ("min", "opt", "max")})
_TIMINGS = {"median_ms": finite, "p90_ms": finite, "p99_ms": finite}
_ROW_EXTRAS = {"device": optional(text), "throughput_per_s": optional(finite),
               "speedup_vs_predict": optional(finite), "max_abs_err": optional(real)}
_ROW_KEYS = {"batch": size, "framework": text, "mode": text}


def _bench_row(row):
    """A row of timings, or of the error that stopped the framework at that batch (then it has no timings)."""
    if isinstance(row, dict) and row.get("error") is not None:
        return text(row["error"]) and record(_ROW_KEYS, _ROW_EXTRAS)(row)
    return record(dict(_ROW_KEYS, **_TIMINGS), _ROW_EXTRAS)(row)


EXPORT_ROUTES = ("keras-export", "tf2onnx")     # how a Keras model became ONNX (contract.ROUTE_ORDER)


def route(value):
    return value in EXPORT_ROUTES


def _layer_precisions(value):
    """{"fp16": layers, ...}: the engine inspector's count, by precision."""
    return isinstance(value, dict) and all(k in ("fp32", "fp16", "int8") and size(v) for k, v in value.items())


def _profiles(value):
    return isinstance(value, dict) and bool(value) and all(text(k) and _PROFILE(v) for k, v in value.items())


EVENT_FIELDS = {
    "versions": {},
    "names": {"inputs": list_of(_INPUT), "outputs": list_of(_OUTPUT), "params": size},
    "step_start": {"step": text},
    "step_end": {"step": text, "seconds": finite, "ok": flag},
    "verified": {"artifact": text, "outputs": mapping, "max_abs_err": real, "atol": optional(finite),
                 "passed": flag},
    "artifact": {"name": text, "kind": text},
    # the ONNX export's route, and each route tried before it with the one line that says why it failed
    "export": {"route": route, "failed": list_of(record({"route": route, "error": text}))},
    "warning": {"message": text, "layer": optional(text)},
    "precision": {"precision": text, "artifact": text, "library": text,
                  "kept_fp32": list_of(record({"layer": text, "nodes": list_of(text), "why": text}))},
    "recipe": {"recipe": text, "onnx": text, "reason": text},
    "engine": {"tensorrt": text, "gpu": text, "compute_capability": text, "profiles": _profiles,
               "portability_note": text, "layer_precisions": optional(_layer_precisions)},
    "bench": {"device": text, "rows": list_of(_bench_row)},
    "engine_check": {"tensorrt": text, "gpu": text, "compute_capability": text, "loadable": flag,
                     "error": optional(text)},
    "error": {"message": text},
    "done": {},
}


def check_event(event):
    """The event when it has the shape its kind needs, else None (unknown kinds too)."""
    if not isinstance(event, dict) or not text(event.get("event")):
        return None
    fields = EVENT_FIELDS.get(event["event"])
    if fields is None:
        return None
    if all(check(event.get(name)) for name, check in fields.items()):
        return event
    return None
