"""Does any form of the LSTM that TensorRT 8.6 accepts reach cuDNN's GPU time? (issue 9's goal against PyTorch)

    python3 benchmarks/lstm_study.py FORMS EXPORT BATCH,BATCH,...     build and time every form
    python3 benchmarks/lstm_study.py --eager PLAN BATCH               three eager calls of one plan (for ncu)

Needs a GPU, TensorRT 8.6 and numpy; the folder toolkit/runtime (as trtkit_runtime) and benchmarks/preview_study.py
sit beside this file (as benchmarks/gpu_proof/run.sh lstm-study copies them). FORMS is what benchmarks/lstm_forms.py
wrote: each FORM.onnx, and lstm-weights.npz, from which this script also builds the LSTM with TensorRT's own
RNNv2 layer (the network API; deprecated in 8.6). EXPORT is the trtkit output folder with the Keras reference.

Every form is built as preview_study builds (FP16, float16 I/O, a profile of exactly one batch, cuBLAS, cuBLASLt
and cuDNN tactics off), twice over in turns, and prints one JSON line: its layers, its largest error against
Keras, and trtkit.runtime's median GPU time and wall time of a graph replay from page-locked input. Plans stay in
/tmp/lstm-study-FORM-BATCH.plan for the kernel census.
"""
import json
import os
import sys

import numpy as np
import preview_study  # copied beside this file, as trtkit.runtime is (as trtkit_runtime)
import tensorrt as trt
import trtkit_runtime as runtime  # type: ignore[import-not-found]

ROUNDS = 2
# ONNX orders the gates i, o, f, c in W, R and the biases.
ONNX_GATES = (trt.RNNGateType.INPUT, trt.RNNGateType.OUTPUT, trt.RNNGateType.FORGET, trt.RNNGateType.CELL)


def rnnv2_network(builder, weights_file, batch, steps, features):
    """The origin LSTM with an RNNv2 layer and the Dense layers after it, for one batch (RNNv2 takes no -1)."""
    w = np.load(weights_file)
    hidden = w["R"].shape[1]
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    x = network.add_input("lstm_1_input", trt.float32, (batch, steps, features))
    rnn = network.add_rnn_v2(x, 1, hidden, steps, trt.RNNOperation.LSTM)
    for index, gate in enumerate(ONNX_GATES):
        rows = slice(index * hidden, (index + 1) * hidden)
        for is_input, matrix, bias in ((True, w["W"], w["B"][:4 * hidden]), (False, w["R"], w["B"][4 * hidden:])):
            rnn.set_weights_for_gate(0, gate, is_input, trt.Weights(np.ascontiguousarray(matrix[rows])))
            rnn.set_bias_for_gate(0, gate, is_input, trt.Weights(np.ascontiguousarray(bias[rows])))
    last = network.add_shuffle(rnn.get_output(1))        # the last step's h: (batch, 1, hidden)
    last.reshape_dims = (batch, hidden)
    tensor = last.get_output(0)
    dense = sorted(name for name in w.files if name.startswith("D"))
    for name in dense:
        matrix = network.add_constant(w[name].shape, trt.Weights(np.ascontiguousarray(w[name]))).get_output(0)
        tensor = network.add_matrix_multiply(tensor, trt.MatrixOperation.NONE, matrix, trt.MatrixOperation.NONE)
        activation = trt.ActivationType.SIGMOID if name == dense[-1] else trt.ActivationType.RELU
        tensor = network.add_activation(tensor.get_output(0), activation).get_output(0)
    network.mark_output(tensor)
    return network


def build(forms, form, batch, shape, path):
    if form != "rnnv2":
        return preview_study.build(os.path.join(forms, form + ".onnx"), batch, True, path)
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = rnnv2_network(builder, os.path.join(forms, "lstm-weights.npz"), batch, *shape)
    return preview_study.build_network(builder, network, batch, True, path)


def study(forms, export, batches):
    inputs = preview_study.load_arrays(os.path.join(export, "reference-inputs.npz"))
    expected = preview_study.load_arrays(os.path.join(export, "reference-outputs.npz"))
    names = sorted(name[:-5] for name in os.listdir(forms) if name.endswith(".onnx")) + ["rnnv2"]
    for turn in range(ROUNDS):
        for batch in batches:
            for form in names:
                path = "/tmp/lstm-study-%s-%d.plan" % (form, batch)
                line = {"round": turn, "form": form, "batch": batch}
                try:
                    if turn == 0:
                        line["build_s"] = round(build(forms, form, batch, inputs[0].shape[1:], path), 1)
                    line["layers"], line["myelin_nodes"] = preview_study.layers(path)
                    error, device, wall = preview_study.timed(path, inputs, expected, batch)
                    line.update(max_abs_err_vs_keras=error, device_ms=round(device, 4), median_ms=round(wall, 4))
                except Exception as e:  # one line per form, then the next
                    line["error"] = "%s: %s" % (type(e).__name__, e)
                print(json.dumps(line), flush=True)


def eager(plan, batch):
    """Three calls without graph replay, so that a profiler sees each kernel launch."""
    with runtime.Engine(plan, check=False, graphs=False) as engine:
        shapes = engine.profiles[0]
        x = [np.zeros((batch,) + shapes[spec.name].opt[1:], spec.engine_dtype) for spec in engine.inputs]
        for _ in range(3):
            engine.predict(x)


if __name__ == "__main__":
    if sys.argv[1] == "--eager":
        eager(sys.argv[2], int(sys.argv[3]))
    else:
        study(sys.argv[1], sys.argv[2], [int(b) for b in sys.argv[3].split(",")])
