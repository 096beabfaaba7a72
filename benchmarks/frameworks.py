"""The framework baselines of issue 9, on a GPU host with PyTorch: Keras 3 on the torch backend, and PyTorch
replaying a CUDA graph of the same model. benchmarks/runtime_goals.py divides trtkit.runtime's figures
(benchmarks/runtime_check.py, same GPU, same run) by these.

    KERAS_BACKEND=torch python3 benchmarks/frameworks.py MODEL.h5 EXPORT_OUT [BATCH,BATCH,...]

MODEL.h5 is the Keras model trtkit built from; EXPORT_OUT a trtkit output of it (its reference inputs and
Keras outputs check that both baselines compute the same model). The TensorRT images hold no GPU Keras,
so this script brings its own: Keras 3 on the torch backend, installed from wheels beside PyTorch
(benchmarks/gpu_proof/run.sh goals), and says so in its first line.

The PyTorch version is rebuilt from the Keras model's layers and weights (a Sequential of LSTM and Dense
layers, as the origin's model is): cuDNN's LSTM, then Linear layers. It runs as the fastest PyTorch user
would write it: one CUDA graph of copy-in from a pinned buffer, the model, copy-out to a pinned buffer, in
float32 and in float16. For each batch, one JSON line: Keras `predict` (one batch) end to end, and per
PyTorch precision the graph's GPU time (CUDA events around the replay, the same measure as
trtkit.runtime's time_device) and numpy-in-numpy-out time, with the largest error against Keras.
Models it cannot rebuild (any other layer: the zoo's Transformer, ViT, CNNs) get the Keras rows only, the
header saying why: Keras `predict` and Keras' direct call (no_grad, numpy out), as `trtkit bench` times them.
"""
import copy
import functools
import json
import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the backend is chosen by the environment, before the import)
import torch  # noqa: E402

TIME_BUDGET_S = float(os.environ.get("FRAMEWORKS_BUDGET_S", 10.0))  # of timed calls per row
MAX_CALLS = 300


def load_arrays(path):
    with np.load(path) as data:
        return [data["a%d" % i] for i in range(len(data["names"]))]


def repeated(array, batch):
    return np.take(array, np.arange(batch) % len(array), axis=0)


def median_ms(call, gpu_time=False):
    """Median milliseconds of call(): wall time, or (gpu_time) the GPU time call() returns."""
    call()
    samples, spent = [], 0.0
    while len(samples) < 5 or (spent < TIME_BUDGET_S and len(samples) < MAX_CALLS):
        start = time.perf_counter()
        gpu = call()
        wall = (time.perf_counter() - start) * 1000
        spent += wall / 1000
        samples.append(gpu if gpu_time else wall)
    return round(statistics.median(samples), 4)


ACTIVATIONS = {"linear": lambda y: y, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
               "softmax": lambda y: torch.softmax(y, -1)}


class NotRebuilt(Exception):
    """The model has a layer TorchVersion does not rebuild."""


class LegacyLSTM(keras.layers.LSTM):
    """Keras 2 (TF 1.x) saved LSTMs with time_major, which Keras 3 refuses; False is Keras 3's only layout."""

    @classmethod
    def from_config(cls, config):
        if config.pop("time_major", False):
            raise SystemExit("frameworks.py rebuilds batch-major LSTMs only")
        return super().from_config(config)


class TorchVersion(torch.nn.Module):
    """A Keras Sequential of LSTM and Dense layers, with its weights, as PyTorch modules."""

    def __init__(self, model):
        super().__init__()
        self.steps = torch.nn.ModuleList()
        self.activations = []
        for layer in model.layers:
            config, weights = layer.get_config(), [torch.tensor(np.asarray(w)) for w in layer.get_weights()]
            if isinstance(layer, keras.layers.LSTM):
                self.steps.append(self._lstm(config, weights))
                self.activations.append(None)
            elif isinstance(layer, keras.layers.Dense):
                dense = torch.nn.Linear(weights[0].shape[0], weights[0].shape[1], bias=len(weights) > 1)
                with torch.no_grad():
                    dense.weight.copy_(weights[0].T)
                    if len(weights) > 1:
                        dense.bias.copy_(weights[1])
                self.steps.append(dense)
                self.activations.append(ACTIVATIONS[config["activation"]])
            else:
                raise NotRebuilt("frameworks.py rebuilds LSTM and Dense layers only, not %s" % type(layer).__name__)

    @staticmethod
    def _lstm(config, weights):
        """Keras' gates are i, f, c, o, as PyTorch's i, f, g, o; Keras has one bias, PyTorch two (one left 0)."""
        if (config["activation"], config["recurrent_activation"]) != ("tanh", "sigmoid") or \
                config.get("return_sequences") or config.get("go_backwards"):
            raise NotRebuilt("frameworks.py rebuilds an LSTM with tanh and sigmoid, last output only")
        kernel, recurrent, bias = weights
        lstm = torch.nn.LSTM(kernel.shape[0], recurrent.shape[0], batch_first=True)
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(kernel.T)
            lstm.weight_hh_l0.copy_(recurrent.T)
            lstm.bias_ih_l0.copy_(bias)
            lstm.bias_hh_l0.zero_()
        return lstm

    def forward(self, x):
        for step, activation in zip(self.steps, self.activations):
            if isinstance(step, torch.nn.LSTM):
                x = step(x)[1][0][-1]  # the last step's hidden state, as Keras' LSTM returns
            else:
                x = activation(step(x))
        return x


class GraphedCall:
    """numpy in, numpy out through one CUDA graph: pinned input -> GPU -> model -> GPU -> pinned output."""

    def __init__(self, module, example, dtype):
        self.module, self.dtype = module, dtype
        self.host_in = torch.empty(example.shape, dtype=dtype).pin_memory()
        self.device_in = torch.empty(example.shape, dtype=dtype, device="cuda")
        self.stream = torch.cuda.Stream()
        with torch.no_grad(), torch.cuda.stream(self.stream):
            for _ in range(3):  # warm-up on the side stream, as torch.cuda.graphs asks
                module(self.device_in)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.device_in.copy_(self.host_in, non_blocking=True)
            out = module(self.device_in)
            self.host_out = torch.empty(out.shape, dtype=dtype).pin_memory()
            self.host_out.copy_(out, non_blocking=True)
        self.start, self.stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def replay_ms(self):
        """GPU time of one replay (copies in and out included)."""
        self.start.record()
        self.graph.replay()
        self.stop.record()
        self.stop.synchronize()
        return self.start.elapsed_time(self.stop)

    def predict(self, x):
        self.host_in.numpy()[...] = x if self.dtype == torch.float32 else x.astype(np.float16)
        self.graph.replay()
        torch.cuda.current_stream().synchronize()
        return self.host_out.numpy().astype(np.float32)


def torch_rows(modules, x, expected):
    rows = {}
    for name, (module, dtype) in modules.items():
        call = GraphedCall(module, x, dtype)
        rows[name] = {"device_ms": median_ms(call.replay_ms, gpu_time=True),
                      "end_to_end_ms": median_ms(functools.partial(call.predict, x)),
                      "max_abs_err_vs_keras": float(np.max(np.abs(call.predict(x) - expected)))}
    return rows


def keras_predict(model, x):
    model.predict(x, batch_size=len(x), verbose=0)  # one batch, as the origin's call


def keras_call(model, x):
    with torch.no_grad():
        return keras.ops.convert_to_numpy(model(x, training=False))


def torch_modules(model):
    """{row name: (module, dtype)} of the PyTorch version, or ({}, why there is none)."""
    try:
        module = TorchVersion(model).cuda().eval()
    except NotRebuilt as e:
        return {}, str(e)
    return {"torch-fp32": (module, torch.float32), "torch-fp16": (copy.deepcopy(module).half(), torch.float16)}, None


def main(argv):
    model_path, export = argv[0], argv[1]
    batches = [int(b) for b in argv[2].split(",")] if len(argv) > 2 else [1, 64, 1024, 100000]
    inputs = load_arrays(os.path.join(export, "reference-inputs.npz"))
    expected = load_arrays(os.path.join(export, "reference-outputs.npz"))
    if len(inputs) != 1 or len(expected) != 1:
        raise SystemExit("frameworks.py times one-input, one-output models")
    model = keras.models.load_model(model_path, compile=False, custom_objects={"LSTM": LegacyLSTM})
    modules, no_torch = torch_modules(model)
    torch.backends.cudnn.benchmark = True
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "keras": keras.__version__,
                      "keras_backend": keras.backend.backend(), "cudnn": torch.backends.cudnn.version(),
                      "no_torch_version": no_torch,
                      "note": "Keras 3 brought by the benchmark (the TensorRT image has no GPU Keras)"}), flush=True)
    for batch in batches:
        x, want = repeated(inputs[0], batch), repeated(expected[0], batch).astype(np.float64)
        keras_out = model.predict(x, batch_size=batch, verbose=0)
        line = {"batch": batch,
                "keras-predict": {"end_to_end_ms": median_ms(functools.partial(keras_predict, model, x)),
                                  "max_abs_err_vs_reference": float(np.max(np.abs(keras_out - want)))},
                "keras-call": {"end_to_end_ms": median_ms(functools.partial(keras_call, model, x)),
                               "max_abs_err_vs_reference": float(np.max(np.abs(keras_call(model, x) - want)))}}
        line.update(torch_rows(modules, x, want))
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
