"""Optimization profiles: MIN/OPT/MAX shapes per input, from io.json and --shapes."""
import numpy as np

from trtkit_steps import contract
from trtkit_steps.errors import StepError

MAX_BATCH = 100000
OPT_BATCH = 1024
MAX_BATCH_BYTES = 2 ** 30  # the default max batch keeps one input batch within 1 GiB


def resolve_profiles(io_inputs, shapes, typical_batch=None):
    """{input: {"min", "opt", "max"}} from --shapes, else batch 1 / OPT / max, where OPT is --typical-batch
    (TensorRT tunes its kernels for OPT: 1.1-1.4x faster at batch 100000 with OPT 100000 than with 1024) or
    min(1024, max)."""
    names = [spec["name"] for spec in io_inputs]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise StepError(f"--shapes names {unknown} are not inputs of the model; its inputs are {names}")
    return {spec["name"]: _input_profile(spec, shapes.get(spec["name"]), typical_batch) for spec in io_inputs}


def _input_profile(spec, override, typical_batch):
    if override:
        if len(override) != 3:
            raise StepError(f"--shapes for {spec['name']} needs MIN/OPT/MAX, got {override}")
        profile = dict(zip(("min", "opt", "max"), [_full_shape(spec, value) for value in override]))
    else:
        profile = _default_profile(spec, typical_batch)
    _check_profile(spec, profile)
    return profile


def _full_shape(spec, value):
    """A --shapes entry: a batch size (the other dims from the model) or a whole shape."""
    dims = contract.shape_entry(spec["shape"], value)
    if any(d is None or d < 0 for d in dims):
        raise StepError(f"input {spec['name']} has dimensions of unknown size {spec['shape']}: give whole shapes, "
                        f"--shapes {spec['name']}:MIN/OPT/MAX with each like {_example_shape(spec)}")
    return [int(d) for d in dims]


def _example_shape(spec):
    return "x".join("N" if d is None else str(d) for d in spec["shape"])


def _default_profile(spec, typical_batch=None):
    dims = list(spec["shape"])
    sample = dims[1:]
    if any(d is None or d < 0 for d in sample):
        raise StepError(f"input {spec['name']} has dimensions of unknown size {dims}: "
                        f"give --shapes {spec['name']}:MIN/OPT/MAX")
    if dims[0] is not None:  # a fixed batch: the model takes only that shape
        return {"min": dims, "opt": dims, "max": dims}
    sample_bytes = np.dtype(spec["dtype"]).itemsize * int(np.prod(sample))
    largest = max(1, min(MAX_BATCH, MAX_BATCH_BYTES // sample_bytes))
    if typical_batch:
        return {"min": [1] + sample, "opt": [typical_batch] + sample, "max": [max(largest, typical_batch)] + sample}
    return {"min": [1] + sample, "opt": [min(OPT_BATCH, largest)] + sample, "max": [largest] + sample}


def _check_profile(spec, profile):
    low, opt, high = profile["min"], profile["opt"], profile["max"]
    if not len(low) == len(opt) == len(high) == len(spec["shape"]):
        raise StepError(f"--shapes for {spec['name']} must have {len(spec['shape'])} dimensions "
                        f"like {_example_shape(spec)}, got {low} / {opt} / {high}")
    if not all(0 < a <= b <= c for a, b, c in zip(low, opt, high)):
        raise StepError(f"--shapes for {spec['name']} needs 0 < MIN <= OPT <= MAX in every dimension, "
                        f"got {low} / {opt} / {high}")


def with_exact_batches(profiles, batches):
    """[profiles, then one per batch size]: the full range first (profile 0, the one Polygraphy, trtexec and Triton
    use unless told), then each batch alone, its other dimensions ranging as in the full one."""
    for name, profile in sorted(profiles.items()):
        low, high = profile["min"][0], profile["max"][0]
        if low == high and any(batch != low for batch in batches):
            raise StepError(f"--exact-batches {','.join(map(str, batches))}: input {name} takes only batch {low}")
    return [profiles] + [{name: {key: [batch] + list(shape[1:]) for key, shape in profile.items()}
                          for name, profile in profiles.items()} for batch in batches]


def reference_runs(profiles, rows):
    """[(row indices, rows kept)]: how the reference's `rows` rows run through an engine of these profiles, in
    runs of one batch size that every input's profile takes; rows repeat where the smallest batch is more than the
    reference has (a Keras model computes each row on its own, so a row's output is the same in any run)."""
    low = max(profile["min"][0] for profile in profiles.values())
    high = min(profile["max"][0] for profile in profiles.values())
    if low > high:
        raise StepError("--shapes gives the inputs no batch size in common: %s"
                        % {name: [p["min"][0], p["max"][0]] for name, p in sorted(profiles.items())})
    size = min(max(rows, low), high)
    return [(np.arange(start, start + size) % rows, min(size, rows - start)) for start in range(0, rows, size)]
