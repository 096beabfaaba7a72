"""How far a Keras model's output moves when its weights are rounded to float16, with every computation still in
float32: the part of an FP16 model's error no choice of FP32 nodes for activations can remove.

    python3 benchmarks/fp16_sensitivity.py [--fit-batchnorm] MODEL EXPORT_OUT [MODEL EXPORT_OUT ...]
    (in the stand-in image)

EXPORT_OUT is a trtkit output of MODEL (its reference inputs and Keras outputs). For each model, one JSON line:
the error (largest absolute, against the reference) with the inputs rounded to float16, with every weight rounded,
and with one layer's weights rounded at a time: how many layers alone move the output past GOAL, and the worst.
benchmarks/ZOO-FP16.md cites it for the models whose FP16 rewrite misses the goal.

--fit-batchnorm first sets every BatchNormalization's statistics to those of its inputs on random samples, as
training fits them to the data, and takes the fitted model's own outputs as the reference: whether a model's
miss is its random weights' (EfficientNetB0's activations grow to thousands without it) or its architecture's.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
GOAL = 1e-2     # issue 22: FP16 within 1e-2 of Keras, relative to the largest output (outputs of order 1 here)


def load(model_path):
    if model_path.endswith(".h5"):
        import tf_keras
        return tf_keras.models.load_model(model_path, compile=False)
    import keras
    return keras.models.load_model(model_path, compile=False)


def arrays(path):
    import numpy as np
    with np.load(path) as data:     # trtkit's layout: names, a0, a1, ...
        return [data["a%d" % i] for i in range(len(data["names"]))]


def rounded(values):
    import numpy as np
    return [v.astype(np.float16).astype(np.float32) if v.dtype == np.float32 else v for v in values]


def fit_batchnorm(model, inputs):
    """One training-mode pass with momentum 0: each BatchNormalization's moving statistics become those of its
    inputs on 256 random samples shaped like the reference inputs (Dropout is active in that pass too)."""
    import numpy as np
    rng = np.random.RandomState(0)
    samples = [rng.standard_normal((256,) + x.shape[1:]).astype(x.dtype) for x in inputs]
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.momentum = 0.0
    model(samples if len(samples) > 1 else samples[0], training=True)


def predict(model, feed):
    """The model's outputs on feed (a list of input arrays), always as a list."""
    outputs = model.predict(feed if len(feed) > 1 else feed[0], verbose=0)
    return outputs if isinstance(outputs, list) else [outputs]


def sensitivity(model_path, export, fit=False):
    import numpy as np
    model = load(model_path)
    inputs = arrays(os.path.join(export, "reference-inputs.npz"))
    reference = arrays(os.path.join(export, "reference-outputs.npz"))
    if fit:
        fit_batchnorm(model, inputs)
        reference = predict(model, inputs)

    def error(feed=inputs):
        return max(float(np.abs(out - ref).max()) for out, ref in zip(predict(model, feed), reference))

    result = {"model": os.path.basename(model_path), **({"fitted_batchnorm": True} if fit else {}),
              "as_loaded": error(), "inputs_rounded": error(rounded(inputs))}
    weights = model.get_weights()
    model.set_weights(rounded(weights))
    result["all_weights_rounded"] = error()
    model.set_weights(weights)
    per_layer = []
    for layer in model.layers:
        own = layer.get_weights()
        if own:
            layer.set_weights(rounded(own))
            per_layer.append((error(), layer.name))
            layer.set_weights(own)
    per_layer.sort(reverse=True)
    result.update(layers_with_weights=len(per_layer), layers_past_goal=sum(e > GOAL for e, _ in per_layer),
                  worst=[[name, round(e, 6)] for e, name in per_layer[:5]])
    return result


def main(argv):
    fit = argv[:1] == ["--fit-batchnorm"]
    argv = argv[1:] if fit else argv
    if not argv or len(argv) % 2:
        raise SystemExit(__doc__)
    for model_path, export in zip(argv[::2], argv[1::2]):
        print(json.dumps(sensitivity(model_path, export, fit)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
