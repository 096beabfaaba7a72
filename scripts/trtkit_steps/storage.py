"""Files a step reads and writes: JSON, whole-or-absent writes, and trtkit's own .npz layout of named arrays
(the reference every artifact is verified against among them)."""
import json
import os

import numpy as np

from trtkit_steps import contract


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_atomic(path, data):
    """Write bytes through a per-process temporary file: a killed step, or a second one
    writing the same cache file, never leaves half a file."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path, data):
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def nonempty(path):
    return os.path.isfile(path) and os.path.getsize(path) > 0


def save_arrays(path, arrays):
    """Save a name -> array dict; names may hold '/' and ':', so keep an index."""
    names = sorted(arrays)
    payload = {"a%d" % i: np.asarray(arrays[n]) for i, n in enumerate(names)}
    payload["names"] = np.array(names)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **payload)
    os.replace(tmp, path)


def load_arrays(path):
    with np.load(path) as data:
        return by_recorded_name({k: data[k] for k in data.files})


def by_recorded_name(arrays):
    """The arrays of an .npz save_arrays wrote (the names in 'names', the arrays as a0, a1, ...) by those names;
    those of any other .npz by its keys."""
    names = arrays.get("names")
    if names is None or names.dtype.kind != "U" or \
            set(arrays) != set(["names"] + ["a%d" % i for i in range(len(names))]):
        return arrays
    return dict((str(name), arrays["a%d" % i]) for i, name in enumerate(names))


def reference_paths(work):
    """The sample inputs and the source model's outputs on them: artifacts, so later builds reuse them."""
    artifacts = os.path.join(work, contract.ARTIFACTS)
    return os.path.join(artifacts, contract.REFERENCE_INPUTS), os.path.join(artifacts, contract.REFERENCE_OUTPUTS)


def load_reference(work):
    """(inputs, expected outputs) of the reference every artifact is verified against."""
    inputs_path, outputs_path = reference_paths(work)
    return load_arrays(inputs_path), load_arrays(outputs_path)
