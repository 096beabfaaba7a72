"""The sample inputs every artifact is verified on: the user's --sample-data, else seeded random data.

Each input spec is {"name", "shape", "dtype"}, with None for a dimension of unknown size.
"""
import numpy as np

from trtkit_steps.common import StepError

SAMPLE_BATCH = 8      # rows of the seeded random inputs when no --sample-data is given


def concrete_shapes(input_specs, shapes, batch):
    """Each input's shape for sample data: batch first, unknown dims from --shapes opt."""
    result = {}
    for spec in input_specs:
        dims = list(spec["shape"])
        opt = (shapes.get(spec["name"]) or [None, None])[1]
        if isinstance(opt, list):      # a full opt shape; a plain batch size leaves the dims alone
            dims = list(opt)
        dims[0] = batch
        if any(d is None for d in dims):
            raise StepError("input %s has a dimension of unknown size %s: give --shapes %s:MIN/OPT/MAX"
                            % (spec["name"], spec["shape"], spec["name"]))
        result[spec["name"]] = dims
    return result


def sample_inputs(input_specs, plan):
    """--sample-data when given, else seeded random data of the right shape and dtype."""
    names = [s["name"] for s in input_specs]
    path = plan["sample_data"]
    if path:
        data = np.load(path)
        arrays = {names[0]: data} if isinstance(data, np.ndarray) else {k: data[k] for k in data.files}
        missing = sorted(set(names) - set(arrays))
        if missing:
            raise StepError("--sample-data lacks input(s) %s (it has %s)" % (missing, sorted(arrays)))
        return {s["name"]: np.asarray(arrays[s["name"]], dtype=s["dtype"]) for s in input_specs}
    rng = np.random.RandomState(plan["seed"])
    shapes = concrete_shapes(input_specs, plan["shapes"], plan.get("sample_batch", SAMPLE_BATCH))
    out = {}
    for s in input_specs:
        if np.issubdtype(np.dtype(s["dtype"]), np.integer):
            out[s["name"]] = rng.randint(0, 10, size=shapes[s["name"]]).astype(s["dtype"])
        else:
            out[s["name"]] = rng.standard_normal(shapes[s["name"]]).astype(s["dtype"])
    return out
