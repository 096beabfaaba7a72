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
  echo "{\"model\": \"/m/$model.h5\", \"model_format\": \"h5\", \"target\": \"onnx\", \"mode\": \"build\", \"opset\": 17, \"seed\": 0, \"sample_batch\": 64}" > "$work/plan.json"
  docker run --rm -u "$(id -u):$(id -g)" -e HOME=/tmp --network none \
    -v "$PWD/scripts:/trtkit/scripts:ro" -v "$PWD/$MODELS:/m:ro" -v "$PWD/$work:/trtkit/work" \
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
