"""The sample inputs every artifact is verified on: the user's --sample-data, else seeded random data.

Each input spec is {"name", "shape", "dtype"}, with None for a dimension of unknown size.
"""
import zipfile

import numpy as np

from trtkit_steps import contract
from trtkit_steps.errors import StepError, Unsupported, first_line
from trtkit_steps.storage import by_recorded_name

SAMPLE_BATCH = 8      # rows of the seeded random inputs when no --sample-data is given
# What np.load raises on a file that is not a .npy or .npz (text, a broken zip, a pickle, a cut-off file).
LOAD_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


def concrete_shapes(input_specs, shapes, batch=None):
    """Each input's shape for sample data: batch first, unknown dims from --shapes opt. Without a batch, the one the
    model fixes (an ONNX model exported for batch 1): an input that fixes its first dimension keeps it, and the
    others take it where the inputs fix one alone, else SAMPLE_BATCH."""
    fixed = set(spec["shape"][0] for spec in input_specs if spec["shape"] and spec["shape"][0] is not None)
    default = fixed.pop() if len(fixed) == 1 else SAMPLE_BATCH
    result = {}
    for spec in input_specs:
        opt = (shapes.get(spec["name"]) or [None, None])[1]
        dims = list(spec["shape"]) if opt is None else contract.shape_entry(spec["shape"], opt)
        if batch is not None:
            dims[0] = batch
        else:
            dims[0] = default if spec["shape"][0] is None else spec["shape"][0]
        if any(d is None for d in dims):
            raise StepError("input %s has a dimension of unknown size %s: give --shapes %s:MIN/OPT/MAX"
                            % (spec["name"], spec["shape"], spec["name"]))
        result[spec["name"]] = dims
    return result


def sample_inputs(input_specs, plan):
    """--sample-data when given, else seeded random data of the right shape and dtype."""
    for spec in input_specs:
        if not spec["shape"]:
            raise Unsupported("input %s is a scalar (shape []): trtkit verifies and builds for batches, so every "
                              "input needs the batch as its first dimension" % spec["name"])
    if plan["sample_data"]:
        return user_samples(plan["sample_data"], input_specs)
    rng = np.random.RandomState(plan["seed"])
    shapes = concrete_shapes(input_specs, plan["shapes"], plan.get("sample_batch"))
    out = {}
    for s in input_specs:
        if np.dtype(s["dtype"]) == np.bool_:   # a mask: as many False as True (normal floats cast to all True)
            out[s["name"]] = rng.randint(0, 2, size=shapes[s["name"]]).astype(bool)
        elif np.issubdtype(np.dtype(s["dtype"]), np.integer):
            out[s["name"]] = rng.randint(0, 10, size=shapes[s["name"]]).astype(s["dtype"])
        else:
            out[s["name"]] = rng.standard_normal(shapes[s["name"]]).astype(s["dtype"])
    return out


def user_samples(path, input_specs):
    """--sample-data as one array per input, each of the input's dtype and shape: anything else is a one-line
    error here, not a traceback from the model later."""
    arrays = _load_arrays(path, [s["name"] for s in input_specs])
    missing = sorted({s["name"] for s in input_specs} - set(arrays))
    if missing:
        raise StepError("--sample-data lacks input(s) %s (it has %s)" % (missing, sorted(arrays)))
    samples = {s["name"]: as_input(arrays[s["name"]], s) for s in input_specs}
    batches = sorted({a.shape[0] for a in samples.values()})
    if len(batches) > 1:
        raise StepError("--sample-data: the inputs have different batch sizes %s; give each the same rows" % batches)
    return samples


def _load_arrays(path, names):
    """name -> array of a .npy (the first input's) or a .npz (by input name); pickles are never loaded."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if not magic.startswith((b"\x93NUMPY", b"PK")):    # numpy would take it for a pickle, and say so
            raise StepError("--sample-data is neither a .npy nor a .npz file (it starts with %r)" % magic)
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return {names[0]: data}
        with data:
            return by_recorded_name({k: data[k] for k in data.files})
    except LOAD_ERRORS as e:
        raise StepError("--sample-data is not a .npy or .npz file numpy reads (%s)" % first_line(e)) from None


def as_input(array, spec, option="--sample-data"):
    """array as the input of this spec ({"name", "shape", "dtype"}), given by option (--sample-data, --calib-data):
    its dtype, and its shape where the model fixes one; anything else is a one-line StepError."""
    name, expected, given = spec["name"], spec["shape"], array
    try:
        with np.errstate(invalid="ignore"):   # NaN to an integer: refused below, in one line
            array = np.asarray(array, dtype=spec["dtype"])
    except (ValueError, TypeError) as e:
        raise StepError("%s: input %s cannot be %s (%s)" % (option, name, spec["dtype"], first_line(e))) from None
    if array.dtype.kind in "biu" and not np.array_equal(array, given):   # numpy casts 2.7 to 2, 2**31 to -2**31
        raise StepError("%s: input %s takes %s, and its %s values are not all whole numbers that %s holds"
                        % (option, name, spec["dtype"], given.dtype, spec["dtype"]))
    if array.ndim != len(expected) or array.size == 0 or \
            any(want is not None and have != want for have, want in zip(array.shape, expected)):
        shown = "x".join("?" if d is None else str(d) for d in expected)
        raise StepError("%s: input %s has shape %s, the model takes %s (? any size, at least 1)"
                        % (option, name, "x".join(map(str, array.shape)) or "()", shown))
    return array
