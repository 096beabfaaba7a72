"""An ONNX file as MODEL: check it, name its inputs and outputs, and make its reference.

    python3 -m trtkit_steps.onnx_import PLAN.json

A bare ONNX model has no Keras model to compare with, so ONNX Runtime's outputs on the sample inputs
are the reference (as in Polygraphy's comparisons). The file is published unchanged as model.onnx, with
the reference beside it: `--target onnx` on a CPU host makes an output folder that an engine build on a
GPU host continues, with no ONNX Runtime there.
"""
import os

import numpy as np

from trtkit_steps import contract
from trtkit_steps.errors import InvalidModel, Unsupported, first_line
from trtkit_steps.events import emit, run_main, step
from trtkit_steps.samples import sample_inputs
from trtkit_steps.storage import read_bytes, reference_paths, save_arrays, write_atomic, write_json


def load_checked(path):
    try:
        import onnx
        import onnxruntime  # noqa: F401  (the reference needs it: fail before any work)
    except ImportError as e:
        raise Unsupported("an ONNX model needs the onnx and onnxruntime packages for its reference, and this "
                          "image lacks %s: use a trtkit toolchain image (any tag), then build the engine "
                          "from that output folder" % e.name) from None
    try:
        model = onnx.load_from_string(read_bytes(path))
        onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError and others
        raise InvalidModel("%s is not a valid ONNX model: %s" % (os.path.basename(path), first_line(e))) from None
    return model


def io_specs(model):
    """The graph's real inputs (not initializers) and outputs, like the keras stage's names."""
    try:
        from onnx.helper import tensor_dtype_to_np_dtype as to_numpy
    except ImportError:  # onnx < 1.13
        from onnx.mapping import TENSOR_TYPE_TO_NP_TYPE
        to_numpy = TENSOR_TYPE_TO_NP_TYPE.__getitem__
    initializers = set(t.name for t in model.graph.initializer)
    def spec(value):
        return {"name": value.name, "keras_tensor": "", "frozen": "", "imported": "", "shape": _dims(value),
                "dtype": np.dtype(to_numpy(value.type.tensor_type.elem_type)).name}
    inputs = [spec(value) for value in model.graph.input if value.name not in initializers]
    outputs = [spec(value) for value in model.graph.output]
    params = int(sum(np.prod(t.dims) for t in model.graph.initializer))
    return {"inputs": inputs, "outputs": outputs, "params": params}


def _dims(value):
    """A value's shape, None for a dimension of unknown (symbolic) size."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in value.type.tensor_type.shape.dim]


def default_opset(model):
    """The version of the ONNX operator set the model imports ("" or its alias "ai.onnx"); None where it imports
    other domains only."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return max(versions) if versions else None


def main(argv):
    from trtkit_steps.onnx_stage import ort_session, run_session
    plan = contract.read_plan(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    with step("inspect"):
        model = load_checked(plan["model"])
        names = io_specs(model)
        emit("names", **names)
    with step("reference"):
        inputs = sample_inputs(names["inputs"], plan)
        expected = run_session(ort_session(plan["model"]), inputs)
        inputs_path, outputs_path = reference_paths(work)
        save_arrays(inputs_path, inputs)
        save_arrays(outputs_path, expected)
        write_json(os.path.join(work, contract.IO), names)
        write_atomic(os.path.join(work, contract.ARTIFACTS, "model.onnx"), read_bytes(plan["model"]))
    emit("artifact", name="model.onnx", kind="onnx", opset=default_opset(model), reference="onnxruntime")


if __name__ == "__main__":
    run_main(main)
