"""Build safe and unsafe models, then scan each with model_trust (run inside the stand-in image).

    python3 tests/trust_models.py OUT_DIR

Prints one JSON line: {model name: reasons}, and the SavedModels again under "no-tf:NAME", scanned as
where TensorFlow's protobuf modules cannot be imported. No model is ever loaded.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from trtkit_steps import model_trust  # noqa: E402  (stdlib only at import time)


def shout(x):
    return x * 2.0


def make_models(out):
    import keras
    import tensorflow as tf
    import tf_keras
    from make_models import cnn_bn, origin_lstm

    L = tf_keras.layers

    def nested(inner_layers):
        x = L.Input((8,), name="x")
        inner = tf_keras.Sequential([L.Input((8,))] + inner_layers, name="inner")
        return tf_keras.Model(x, L.Dense(2, name="head")(inner(x)))

    def top_lambda():
        x = L.Input((8,), name="x")
        return tf_keras.Model(x, L.Dense(2, name="head")(L.Lambda(lambda t: t * 2.0, name="evil")(x)))

    def time_distributed():
        x = L.Input((5, 8), name="x")
        return tf_keras.Model(x, L.TimeDistributed(L.Lambda(lambda t: t + 1.0, name="td_evil"), name="td")(x))

    def custom_activation():
        tf_keras.utils.get_custom_objects()["shout"] = shout
        x = L.Input((8,), name="x")
        return tf_keras.Model(x, L.Dense(2, activation=shout, name="loud")(x))

    def custom_layer():
        @tf_keras.saving.register_keras_serializable(package="my_pkg")
        class MyLayer(L.Layer):
            def call(self, t):
                return t

        x = L.Input((8,), name="x")
        return tf_keras.Model(x, MyLayer(name="mine")(x))

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def __call__(self, s):
            tf.io.write_file("/tmp/pwned", s)
            return s

    class Caller(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32)])
        def __call__(self, t):
            return tf.py_function(lambda v: v * 2.0, [t], tf.float32)

    def keras3_lambda(path):
        x = keras.Input((8,), name="x")
        keras.Model(x, keras.layers.Lambda(lambda t: t * 3.0, name="k3_evil")(x)).save(path)

    makers = {
        "safe_lstm.h5": lambda p: origin_lstm(tf_keras).save(p),
        "safe_cnn.h5": lambda p: cnn_bn(tf_keras).save(p),
        "safe_mlp.keras": lambda p: keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, name="out")]).save(p),
        "safe_savedmodel": lambda p: tf_keras.models.save_model(origin_lstm(tf_keras), p, save_format="tf"),
        "safe_export": lambda p: keras.Sequential([keras.Input((20,)), keras.layers.Dense(4, name="out")]).export(p),
        "safe_nested.h5": lambda p: nested([L.Dense(4, name="inner_dense")]).save(p),
        "weights_only.h5": lambda p: origin_lstm(tf_keras).save_weights(p),
        "not_hdf5.h5": lambda p: open(p, "w").write("not HDF5"),
        "lambda_top.h5": lambda p: top_lambda().save(p),
        "lambda_nested.h5": lambda p: nested([L.Lambda(lambda t: t - 1.0, name="nested_evil")]).save(p),
        "lambda_timedistributed.h5": lambda p: time_distributed().save(p),
        "custom_activation.h5": lambda p: custom_activation().save(p),
        "lambda.keras": keras3_lambda,
        "lambda_savedmodel": lambda p: tf_keras.models.save_model(top_lambda(), p, save_format="tf"),
        "write_file_savedmodel": lambda p: tf.saved_model.save(Writer(), p),
        "py_function_savedmodel": lambda p: tf.saved_model.save(Caller(), p),
        "custom_layer.h5": lambda p: custom_layer().save(p),
        "lambda_activation.keras": lambda p: keras.Sequential([keras.Input((8,)), keras.layers.Dense(
            2, activation=lambda t: t * 2.0, name="lambda_act")]).save(p),
    }
    for name, make in makers.items():
        make(os.path.join(out, name))
    return sorted(makers)


def hide_tensorflow_protos():
    """Make the scanner's TensorFlow and Keras protobuf imports fail, as in a container without them."""
    import importlib

    for name in ["tensorflow.core.protobuf.saved_model_pb2"] + list(model_trust.METADATA_PROTOS):
        package, _, module = name.rpartition(".")
        try:
            delattr(importlib.import_module(package), module)
        except (ImportError, AttributeError):
            pass
        sys.modules[name] = None


def main(out):
    names = make_models(out)
    kinds = {name: {"h5": "h5", "keras": "keras"}.get(name.rpartition(".")[2], "savedmodel") for name in names}
    results = {name: model_trust.untrusted_reasons(os.path.join(out, name), kinds[name]) for name in names}
    hide_tensorflow_protos()
    results.update({"no-tf:" + name: model_trust.untrusted_reasons(os.path.join(out, name), kind)
                    for name, kind in kinds.items() if kind == "savedmodel"})
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
