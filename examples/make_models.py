"""Make the example and test models (run inside the CPU image: it needs TensorFlow).

    python3 examples/make_models.py OUT_DIR [NAME ...]

origin_lstm.h5      the origin post's model: (11, 192) -> LSTM -> dense_1 -> dense_2 -> dense_3 (sigmoid), Keras 2 .h5
cnn_bn.h5           a small CNN with batch norm (Keras 2 .h5)
two_io.h5           two inputs, two outputs (Keras 2 .h5)
keras3_mlp.keras    a Keras 3 .keras file
origin_savedmodel/  the origin model as a SavedModel folder
weights_only.h5     weights without a model config (bad input)
fp16_overflow.h5    a model whose layer "big" outputs values past float16's 65504 (--precision fp16 keeps it FP32)
price_regression.h5 a regression model of prices near 2.4e5 (its exports are verified relative to their size)
Weights are seeded, so every run makes the same models.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def origin_lstm(tfk):
    L = tfk.layers
    return tfk.Sequential([
        L.LSTM(64, input_shape=(11, 192), name="lstm_1"),
        L.Dense(32, activation="relu", name="dense_1"),
        L.Dense(16, activation="relu", name="dense_2"),
        L.Dense(1, activation="sigmoid", name="dense_3"),
    ])


def cnn_bn(tfk):
    L = tfk.layers
    x = L.Input((32, 32, 3), name="image")
    y = L.Conv2D(8, 3, padding="same", name="conv_1")(x)
    y = L.BatchNormalization(name="bn_1")(y)
    y = L.ReLU(name="relu_1")(y)
    y = L.MaxPooling2D(name="pool_1")(y)
    y = L.Conv2D(16, 3, padding="same", name="conv_2")(y)
    y = L.BatchNormalization(name="bn_2")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(10, activation="softmax", name="probs")(y)
    return tfk.Model(x, y)


def two_io(tfk):
    L = tfk.layers
    a = L.Input((16,), name="features")
    b = L.Input((8, 4), name="sequence")
    h = L.Concatenate(name="joined")([L.Dense(8, activation="tanh", name="feat_dense")(a), L.Flatten(name="flat")(b)])
    score = L.Dense(1, activation="sigmoid", name="score")(h)
    logits = L.Dense(3, name="logits")(h)
    return tfk.Model([a, b], [score, logits])


def fp16_overflow(tfk):
    """Dense "big" multiplies by 20000 (outputs near 1e5, inf in float16); "shrink" brings them back to O(1)."""
    L = tfk.layers
    x = L.Input((16,), name="x")
    h = L.Dense(32, activation="relu", name="hidden")(x)
    big = L.Dense(8, name="big", kernel_initializer=tfk.initializers.Constant(20000.0))(h)
    return tfk.Model(x, L.Dense(4, name="head")(L.Rescaling(1e-5, name="shrink")(big)))


def price_regression(tfk):
    """features (32) -> hidden (relu) -> price: outputs near 2.4e5, where float32 holds about two decimals."""
    L = tfk.layers
    x = L.Input((32,), name="features")
    normal = tfk.initializers.RandomNormal(0.0, 1.0)
    h = L.Dense(64, activation="relu", name="hidden", kernel_initializer=normal, bias_initializer=normal)(x)
    return tfk.Model(x, L.Dense(1, name="price", kernel_initializer=tfk.initializers.RandomNormal(300.0, 100.0),
                                bias_initializer=tfk.initializers.Constant(2e5))(h))


def randomize_batchnorm(model, rng):
    """Non-trivial moving statistics, so folding batch norm is really tested."""
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, rng.normal(0, 0.5, mean.shape),
                               rng.uniform(0.5, 2.0, var.shape)])


def main(out, names):
    import keras
    import numpy as np
    import tensorflow as tf
    import tf_keras

    os.makedirs(out, exist_ok=True)
    tf.random.set_seed(0)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    makers = {
        "origin_lstm.h5": lambda p: origin_lstm(tf_keras).save(p),
        "cnn_bn.h5": lambda p: _save_cnn(tf_keras, p, rng),
        "two_io.h5": lambda p: two_io(tf_keras).save(p),
        "keras3_mlp.keras": lambda p: keras.Sequential([
            keras.Input((20,), name="x"), keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(4, name="out")]).save(p),
        "origin_savedmodel": lambda p: tf_keras.models.save_model(origin_lstm(tf_keras), p, save_format="tf"),
        "weights_only.h5": lambda p: origin_lstm(tf_keras).save_weights(p),
        "fp16_overflow.h5": lambda p: fp16_overflow(tf_keras).save(p),
        "price_regression.h5": lambda p: price_regression(tf_keras).save(p),
    }
    for name in names or sorted(makers):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            makers[name](path)
        print("made", path)


def _save_cnn(tfk, path, rng):
    model = cnn_bn(tfk)
    randomize_batchnorm(model, rng)
    model.save(path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
