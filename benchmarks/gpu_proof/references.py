"""Keras outputs at the bench batch sizes, for the GPU machine (no TensorFlow there).

    python3 benchmarks/gpu_proof/references.py WORK MODEL BATCH [BATCH ...]   (inside the stand-in image)

Writes WORK/bench_reference/b<BATCH>.npz from the same seeded inputs the bench
makes (keras_stage.sample_inputs), so bench.py on the GPU machine reports each
engine's error against Keras at every batch size, 100000 included.
"""
import os
import sys

from trtkit_steps.common import read_json, save_arrays
from trtkit_steps.keras_stage import load_model, reference_outputs, sample_inputs


def main(work, model_path, batches):
    plan = read_json(os.path.join(work, "plan.json"))
    model = load_model(model_path, "h5")
    os.makedirs(os.path.join(work, "bench_reference"), exist_ok=True)
    for batch in batches:
        inputs = sample_inputs(model, dict(plan, sample_batch=batch, sample_data=None))
        save_arrays(os.path.join(work, "bench_reference", "b%d.npz" % batch), reference_outputs(model, inputs))
        print("reference", work, batch)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(b) for b in sys.argv[3:]])
