"""INT8 calibration data and its cache. A cache saved for the same model, data and TensorRT
version is reused instead of calibrating again."""
import glob
import hashlib
import os

import numpy as np

from trtkit_steps.errors import StepError, first_line
from trtkit_steps.samples import LOAD_ERRORS, as_input
from trtkit_steps.storage import load_arrays, nonempty, read_bytes, write_atomic

CALIBRATION_BATCH = 64


class Calibration(object):
    """INT8 calibration data and its cache file, which TensorRT reads when it is there and
    writes when it calibrates. A cache saved in shared_cache for the same model, data and
    TensorRT version is copied there first, so calibration is not run again."""

    def __init__(self, arrays, cache_path, shared_cache):
        self.arrays = arrays
        self.rows = len(next(iter(arrays.values())))
        self.cache_path = cache_path
        self.shared_cache = shared_cache
        self.reused = nonempty(shared_cache)
        if self.reused:
            write_atomic(cache_path, read_bytes(shared_cache))

    def save(self):
        if not nonempty(self.cache_path):
            raise StepError("TensorRT wrote no INT8 calibration cache: calibration did not run")
        if not self.reused:
            write_atomic(self.shared_cache, read_bytes(self.cache_path))


def int8_calibration_data(plan, io_inputs):
    """--calib-data for --precision int8, which needs it: TensorRT's calibrator and the Q/DQ rewrite set their
    INT8 scales from it."""
    if not plan["calib_data"]:
        raise StepError("--precision int8 needs --calib-data: samples like the real inputs, from which the INT8 "
                        "scales are set")
    return load_calibration_data(plan["calib_data"], io_inputs)


def load_calibration_data(path, io_inputs):
    """{input: array} from a .npy (one input), an .npz, or a folder of them joined along the batch."""
    if not path or not os.path.exists(path):
        raise StepError(f"INT8 calibration data {path} does not exist")
    files = sorted(glob.glob(os.path.join(path, "*.np[yz]"))) if os.path.isdir(path) else [path]
    if not files:
        raise StepError(f"no .npy or .npz files in the calibration folder {path}")
    parts = [_calibration_file(f, io_inputs) for f in files]
    arrays = {}
    for spec in io_inputs:
        shapes = sorted(set(p[spec["name"]].shape[1:] for p in parts))
        if len(shapes) > 1:
            raise StepError(f"--calib-data: the files give input {spec['name']} rows of different shapes {shapes}")
        arrays[spec["name"]] = np.concatenate([p[spec["name"]] for p in parts])
    rows = {name: len(a) for name, a in arrays.items()}
    if len(set(rows.values())) != 1 or not min(rows.values()):
        raise StepError(f"calibration data needs the same, non-zero number of samples per input, got {rows}")
    return arrays


def _calibration_file(path, io_inputs):
    """{input: array} of one file, each of its input's dtype and shape: anything else is a one-line error here,
    not a traceback from numpy or TensorRT later."""
    names = [spec["name"] for spec in io_inputs]
    if path.endswith(".npy") and len(names) != 1:
        raise StepError(f"{path} holds one array but the model has inputs {names}: "
                        "use an .npz keyed by input name")
    try:
        arrays = {names[0]: np.load(path, allow_pickle=False)} if path.endswith(".npy") else load_arrays(path)
    except LOAD_ERRORS as e:
        raise StepError(f"calibration file {path} is not a .npy or .npz file numpy reads ({first_line(e)})") from None
    if len(names) == 1 and len(arrays) == 1:
        arrays = {names[0]: next(iter(arrays.values()))}
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise StepError(f"calibration file {path} lacks input(s) {missing} (it has {sorted(arrays)})")
    return {spec["name"]: as_input(arrays[spec["name"]], spec, "--calib-data") for spec in io_inputs}


def calibration_cache_name(onnx_path, trt_version, arrays):
    """Scales hold for one model, one data set and one TensorRT version: all three key the file."""
    digest = hashlib.sha256()
    with open(onnx_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(trt_version.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return f"calibration-{digest.hexdigest()[:32]}.cache"
