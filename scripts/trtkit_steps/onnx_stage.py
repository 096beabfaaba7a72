"""Verify the exported ONNX model: onnx.checker, ONNX Runtime load, outputs vs Keras.

    python3 -m trtkit_steps.onnx_stage PLAN.json

tf2onnx can report success and still write a model ONNX Runtime refuses
(Loop + TensorListReserve), so an ONNX artifact only counts once it loads and
matches the Keras reference.
"""
import os

import numpy as np

from trtkit_steps import contract
from trtkit_steps.comparison import EXPORT_ATOL, compare, gate, tolerance
from trtkit_steps.errors import StepError, first_line
from trtkit_steps.events import emit, run_main, step
from trtkit_steps.storage import load_reference


def ort_session(path):
    import onnxruntime as ort
    try:
        return ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types per version
        raise StepError("ONNX Runtime cannot load %s: %s" % (os.path.basename(path), first_line(e))) from None


def run_session(session, inputs):
    names = [o.name for o in session.get_outputs()]
    feed = {i.name: np.asarray(inputs[i.name]) for i in session.get_inputs()}
    try:
        return dict(zip(names, session.run(names, feed)))
    except Exception as e:  # ORT raises its own exception types per version
        raise StepError("ONNX Runtime cannot run the model on the sample inputs: %s" % first_line(e)) from None


def main(argv):
    import onnxruntime
    plan = contract.read_plan(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    emit("versions", onnxruntime=onnxruntime.__version__)
    with step("verify-onnx"):
        session = ort_session(os.path.join(work, contract.ARTIFACTS, "model.onnx"))
        inputs, expected = load_reference(work)
        actual = run_session(session, inputs)
        gate("model.onnx", compare(expected, actual), tolerance(plan, EXPORT_ATOL, expected),
             os.path.join(work, contract.EVIDENCE), inputs, expected, actual)


if __name__ == "__main__":
    run_main(main)
