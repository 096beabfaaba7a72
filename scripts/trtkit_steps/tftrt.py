"""TF-TRT (TrtGraphConverterV2), where the stack's TensorFlow has TensorRT (TF 2.x up to 2.17).

    python3 -m trtkit_steps.tftrt PLAN.json

TrtGraphConverterV2 takes a SavedModel only, so the model is saved as one
with the io names trtkit found (no node names typed by hand), converted,
its engines built for the sample batch, and saved as artifacts/model.tftrt/.
The result is then loaded back and checked against the Keras reference.

Not exercised by trtkit's tests or GPU proof: no stack with TF-TRT could run
on the development machines (see docs/gpu-proof.md).
"""
import os
import shutil

from trtkit_steps import contract
from trtkit_steps.comparison import compare, gate, tolerance
from trtkit_steps.errors import Unsupported
from trtkit_steps.events import emit, run_main, step
from trtkit_steps.keras_stage import load_model
from trtkit_steps.storage import load_reference
from trtkit_steps.trt.calibration import load_calibration_data
from trtkit_steps.trt.settings import default_atol

PRECISION_MODES = {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}


def save_serving_model(model, path):
    """The model as a SavedModel whose signature takes and returns trtkit's io names."""
    import tensorflow as tf
    specs = [tf.TensorSpec([None] + s["shape"][1:], s["dtype"], name=s["name"]) for s in model.inputs]
    names = [o["name"] for o in model.outputs]
    serve = tf.function(lambda *xs: dict(zip(names, model.call(list(xs)))), input_signature=specs)
    module = tf.Module()
    module.owner = model.owner   # tracks the variables
    tf.saved_model.save(module, path, signatures=serve.get_concrete_function())


def calibration_feed(plan, specs):
    """--calib-data (a .npy, an .npz or a folder of them, read as the engine step reads it), in the inputs' order."""
    arrays = load_calibration_data(plan["calib_data"], specs)
    return [arrays[spec["name"]] for spec in specs]


def convert(saved_model, out, plan, inputs, specs):
    from tensorflow.python.compiler.tensorrt import trt_convert as trt
    if plan["precision"] == "int8" and not plan["calib_data"]:
        raise Unsupported("--precision int8 needs --calib-data")
    order = [spec["name"] for spec in specs]
    converter = trt.TrtGraphConverterV2(input_saved_model_dir=saved_model,
                                        precision_mode=PRECISION_MODES[plan["precision"]],
                                        use_calibration=plan["precision"] == "int8", use_dynamic_shape=True,
                                        dynamic_shape_profile_strategy="Optimal")
    feed = [inputs[name] for name in order]
    if plan["precision"] == "int8":
        calib_feed = calibration_feed(plan, specs)
        converter.convert(calibration_input_fn=lambda: iter([tuple(calib_feed)]))
    else:
        converter.convert()
    converter.build(input_fn=lambda: iter([tuple(feed)]))
    converter.save(out)


def run_converted(path, inputs):
    import tensorflow as tf
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return {name: value.numpy() for name, value in serve(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def main(argv):
    import tensorflow as tf
    plan = contract.read_plan(argv[0])
    work = os.path.dirname(os.path.abspath(argv[0]))
    if tf.__version__.startswith("1."):
        raise Unsupported("TF-TRT with TensorFlow %s (TrtGraphConverter, TF 1.x) is not supported by trtkit's steps: "
                          "use --target engine" % tf.__version__)
    model = load_model(plan)
    inputs, expected = load_reference(work)
    out = os.path.join(work, contract.ARTIFACTS, "model.tftrt")
    with step("tftrt-convert"):
        saved = os.path.join(work, "savedmodel")
        save_serving_model(model, saved)
        convert(saved, out, plan, inputs, model.inputs)
        shutil.rmtree(saved)
    emit("artifact", name="model.tftrt", kind="tftrt-savedmodel", precision=plan["precision"])
    with step("verify-tftrt"):
        actual = run_converted(out, inputs)
        atol = tolerance(plan, default_atol(plan["precision"], False), expected)
        gate("model.tftrt", compare(expected, actual), atol, os.path.join(work, contract.EVIDENCE), inputs, expected,
             actual)


if __name__ == "__main__":
    run_main(main)
