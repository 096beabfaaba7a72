"""The zoo: real architectures with random weights, Keras 2 (.h5, tf_keras) and Keras 3 (.keras), small inputs.

    python3 benchmarks/zoo_models.py OUT_DIR [NAME ...]     (inside the stand-in image: it needs TensorFlow)

keras.applications models are made with weights=None (nothing is downloaded); the rest are plain Keras layers:
Transformer and ViT blocks (MultiHeadAttention, LayerNormalization, 'gelu' Dense layers), recurrent models
(masked, bidirectional, stacked, GRU, SimpleRNN) and preprocessing layers. Classifiers end in a softmax, so
outputs are of order 1, where the export tolerance (1e-5) is absolute. Weights are seeded.
benchmarks/zoo.py builds every model through the CLI; tests/test_zoo.py the FAST ones.

This file imports no TensorFlow at the top: the host reads ZOO and FAST from it.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
IMAGE = (32, 32, 3)


def _app(name, **kwargs):
    """A keras.applications model (Keras 2 or 3) with random weights for 32x32 images and 10 classes."""
    return lambda k: getattr(k.applications, name)(weights=None, input_shape=IMAGE, classes=10, **kwargs)


def _encoder_block(k, x, heads, key_dim, hidden, prefix):
    L = k.layers
    attended = L.MultiHeadAttention(heads, key_dim, name=prefix + "_mha")(x, x)
    x = L.LayerNormalization(name=prefix + "_ln_1")(L.Add(name=prefix + "_add_1")([x, attended]))
    h = L.Dense(hidden, activation="gelu", name=prefix + "_ffn_1")(x)
    h = L.Dense(x.shape[-1], name=prefix + "_ffn_2")(h)
    return L.LayerNormalization(name=prefix + "_ln_2")(L.Add(name=prefix + "_add_2")([x, h]))


def transformer_encoder(k):
    """Two encoder blocks over 16 tokens of width 32."""
    x = k.layers.Input((16, 32), name="tokens")
    h = _encoder_block(k, _encoder_block(k, x, 4, 8, 64, "block_1"), 4, 8, 64, "block_2")
    return k.Model(x, h)


def vit(k):
    """A small ViT: 4x4 patches of a 32x32 image (Conv2D), two encoder blocks, mean over tokens, softmax."""
    L = k.layers
    x = L.Input(IMAGE, name="image")
    patches = L.Conv2D(32, 4, strides=4, name="patchify")(x)
    tokens = L.Reshape((64, 32), name="tokens")(patches)
    h = _encoder_block(k, _encoder_block(k, tokens, 4, 8, 64, "block_1"), 4, 8, 64, "block_2")
    pooled = L.GlobalAveragePooling1D(name="pool")(L.LayerNormalization(name="ln_out")(h))
    return k.Model(x, L.Dense(10, activation="softmax", name="probs")(pooled))


def masked_lstm(k):
    """Token ids, 0 is padding (Embedding mask_zero): the mask reaches the LSTM."""
    L = k.layers
    x = L.Input((12,), dtype="int32", name="ids")
    h = L.LSTM(16, name="lstm")(L.Embedding(20, 8, mask_zero=True, name="embed")(x))
    return k.Model(x, L.Dense(1, activation="sigmoid", name="score")(h))


def masking_lstm(k):
    """Float sequences whose all-zero steps are masked (Masking)."""
    L = k.layers
    x = L.Input((10, 6), name="sequence")
    h = L.LSTM(16, name="lstm")(L.Masking(0.0, name="mask")(x))
    return k.Model(x, L.Dense(3, activation="softmax", name="probs")(h))


def _bidirectional(cell, name):
    def model(k):
        L = k.layers
        x = L.Input((10, 6), name="sequence")
        h = L.Bidirectional(getattr(L, cell)(16), name=name)(x)
        return k.Model(x, L.Dense(3, activation="softmax", name="probs")(h))
    return model


def _stacked(cell, prefix):
    def model(k):
        L = k.layers
        x = L.Input((10, 6), name="sequence")
        h = getattr(L, cell)(16, return_sequences=True, name=prefix + "_1")(x)
        h = getattr(L, cell)(16, name=prefix + "_2")(h)
        return k.Model(x, L.Dense(1, activation="sigmoid", name="score")(h))
    return model


bidirectional_lstm, bidirectional_gru = _bidirectional("LSTM", "bi_lstm"), _bidirectional("GRU", "bi_gru")
stacked_lstm, stacked_gru = _stacked("LSTM", "lstm"), _stacked("GRU", "gru")


def simple_rnn(k):
    L = k.layers
    x = L.Input((10, 6), name="sequence")
    return k.Model(x, L.Dense(1, activation="sigmoid", name="score")(L.SimpleRNN(16, name="rnn")(x)))


def conv1d_text(k):
    """Token ids through an Embedding, Conv1D and global max pooling."""
    L = k.layers
    x = L.Input((24,), dtype="int32", name="ids")
    h = L.Conv1D(16, 3, activation="relu", name="conv")(L.Embedding(20, 8, name="embed")(x))
    return k.Model(x, L.Dense(4, activation="softmax", name="probs")(L.GlobalMaxPooling1D(name="pool")(h)))


def preprocessing(k):
    """Preprocessing layers in the model: Rescaling, Normalization (given statistics), Resizing, CenterCrop."""
    L = k.layers
    x = L.Input((40, 40, 3), name="image")
    h = L.Rescaling(1.0 / 255, name="rescale")(x)
    h = L.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.050, 0.051], name="normalize")(h)
    h = L.Resizing(32, 32, name="resize")(h)
    h = L.CenterCrop(24, 24, name="crop")(h)
    h = L.Conv2D(8, 3, activation="relu", name="conv")(h)
    return k.Model(x, L.Dense(10, activation="softmax", name="probs")(L.GlobalAveragePooling2D(name="pool")(h)))


def grouped_conv(k):
    """A Conv2D with groups, as ConvNeXt's depthwise layers (Keras 3 compiles it with XLA on the CPU)."""
    L = k.layers
    x = L.Input((16, 16, 8), name="image")
    h = L.Conv2D(8, 3, groups=8, padding="same", name="grouped")(x)
    h = L.Dense(16, activation="gelu", name="pointwise")(L.LayerNormalization(name="ln")(h))
    return k.Model(x, L.Dense(10, activation="softmax", name="probs")(L.GlobalAveragePooling2D(name="pool")(h)))


def two_inputs(k):
    """An image and tabular features, joined."""
    L = k.layers
    image = L.Input(IMAGE, name="image")
    features = L.Input((12,), name="features")
    h = L.GlobalAveragePooling2D(name="pool")(L.Conv2D(8, 3, activation="relu", name="conv")(image))
    h = L.Concatenate(name="joined")([h, L.Dense(8, activation="relu", name="feature_dense")(features)])
    return k.Model([image, features], L.Dense(2, activation="softmax", name="probs")(h))


# name -> (maker of a Keras 2 or 3 model, given tf_keras or keras)
ZOO = {
    "k3_mobilenet_v2.keras": _app("MobileNetV2", alpha=0.35),
    "k3_mobilenet_v3_small.keras": _app("MobileNetV3Small"),
    "k3_efficientnet_b0.keras": _app("EfficientNetB0"),
    "k3_resnet50.keras": _app("ResNet50"),
    "k3_densenet121.keras": _app("DenseNet121"),
    "k3_convnext_tiny.keras": _app("ConvNeXtTiny"),
    "k3_grouped_conv.keras": grouped_conv,
    "k3_transformer_encoder.keras": transformer_encoder,
    "k3_vit.keras": vit,
    "k3_masked_lstm.keras": masked_lstm,
    "k3_bidirectional_lstm.keras": bidirectional_lstm,
    "k3_stacked_gru.keras": stacked_gru,
    "k3_simple_rnn.keras": simple_rnn,
    "k3_conv1d_text.keras": conv1d_text,
    "k3_preprocessing.keras": preprocessing,
    "k3_two_inputs.keras": two_inputs,
    "k2_mobilenet.h5": _app("MobileNet", alpha=0.25),
    "k2_resnet50.h5": _app("ResNet50"),
    "k2_efficientnet_b0.h5": _app("EfficientNetB0"),
    "k2_transformer_encoder.h5": transformer_encoder,
    "k2_vit.h5": vit,
    "k2_masking_lstm.h5": masking_lstm,
    "k2_bidirectional_gru.h5": bidirectional_gru,
    "k2_stacked_lstm.h5": stacked_lstm,
    "k2_stacked_gru.h5": stacked_gru,
    "k2_preprocessing.h5": preprocessing,
}
# Fast enough for CI (seconds each); the large keras.applications CNNs run in benchmarks/zoo.py only.
FAST = ("k3_mobilenet_v2.keras", "k3_grouped_conv.keras", "k3_transformer_encoder.keras", "k3_vit.keras",
        "k3_masked_lstm.keras", "k3_bidirectional_lstm.keras", "k3_stacked_gru.keras", "k3_preprocessing.keras",
        "k2_mobilenet.h5", "k2_transformer_encoder.h5", "k2_masking_lstm.h5", "k2_bidirectional_gru.h5",
        "k2_preprocessing.h5")


def main(out, names):
    import keras
    import tensorflow as tf
    import tf_keras

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
    import numpy as np
    from make_models import randomize_batchnorm

    os.makedirs(out, exist_ok=True)
    for name in names or sorted(ZOO):
        path = os.path.join(out, name)
        if os.path.exists(path):
            continue
        tf.random.set_seed(0)
        keras.utils.set_random_seed(0)
        model = ZOO[name](tf_keras if name.endswith(".h5") else keras)
        randomize_batchnorm(model, np.random.default_rng(0))
        model.save(path)
        print("made", path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
