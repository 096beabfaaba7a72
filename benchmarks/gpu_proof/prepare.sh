#!/usr/bin/env bash
# benchmarks/gpu_proof/prepare.sh: on the development machine (Docker, stand-in image).
# Runs trtkit's in-container pipeline (target onnx) for the origin model and the
# CNN, and keeps each work folder (model.onnx, inputs.npz, reference.npz, io.json)
# in .gpu-run/, for run.sh to build and verify engines on real TensorRT.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=.gpu-run
MODELS=${MODELS_DIR:-examples/models}
rm -rf "$RUN"; mkdir -p "$RUN" "$MODELS"
docker run --rm -u "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD:/repo" -w /repo trtkit/standin:19.07-py3 \
  python3 examples/make_models.py "$MODELS" origin_lstm.h5 cnn_bn.h5 >/dev/null
for model in origin_lstm cnn_bn; do
  work=$RUN/$model
  mkdir -p "$work/artifacts"
  # The plan as trtkit writes it (the contract rejects any other), for the model mounted at /trtkit/model.
  .venv/bin/python -c "import json, sys; from pathlib import Path; from trtkit.modelfile import ModelRef; \
from trtkit.plan import BuildPlan; print(json.dumps(BuildPlan(model=ModelRef(Path(sys.argv[1]), 'h5'), \
image='x:y').container_plan('onnx')))" "$MODELS/$model.h5" > "$work/plan.json"
  docker run --rm -u "$(id -u):$(id -g)" -e HOME=/tmp --network none \
    -v "$PWD/scripts:/trtkit/scripts:ro" -v "$PWD/$MODELS:/trtkit/model:ro" -v "$PWD/$work:/trtkit/work" \
    trtkit/standin:19.07-py3 python3 /trtkit/scripts/pipeline.py /trtkit/work/plan.json | grep '::trtkit::{"artifact\|verified' || true
done
# Keras references at the bench batch sizes, and INT8 calibration data for the CNN.
declare -A BATCHES=([origin_lstm]="1 64 1024 100000" [cnn_bn]="1 64 1024 8192")
for model in origin_lstm cnn_bn; do
  docker run --rm -u "$(id -u):$(id -g)" -e HOME=/tmp -e PYTHONPATH=/repo/scripts --network none \
    -v "$PWD:/repo" -w /repo trtkit/standin:19.07-py3 \
    python3 benchmarks/gpu_proof/references.py "$RUN/$model" "$MODELS/$model.h5" ${BATCHES[$model]} 2>/dev/null
done
docker run --rm -u "$(id -u):$(id -g)" -v "$PWD:/repo" -w /repo trtkit/standin:19.07-py3 \
  python3 -c "import numpy as np; np.save('$RUN/cnn_bn/calib.npy', np.random.RandomState(1).standard_normal((256, 32, 32, 3)).astype('float32'))"
du -sh "$RUN"
