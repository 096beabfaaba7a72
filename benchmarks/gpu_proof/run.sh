#!/usr/bin/env bash
# benchmarks/gpu_proof/run.sh: on the GPU machine, with the TensorRT 8.6 kit of
# ../shared/gpu assembled in $KIT (default /tmp/trt86) and the work folders made
# by prepare.sh in .gpu-run/. Runs trtkit's container-side engine and bench
# steps unchanged under the kit's python3.9, writing the log and the events to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
KIT=${KIT:-/tmp/trt86}
OUT=${OUT:-/tmp/gpu-proof-out}
TMP=/tmp/gpu-proof
. "$KIT/env.sh"
rm -rf "$TMP"; mkdir -p "$TMP/cache" "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$OUT/gpu.txt"
# The kit's cuBLAS/cuBLASLt/cuDNN are stubs: those tactic sources must stay off.
BASE='{"disabled_tactic_sources": ["CUBLAS", "CUBLAS_LT", "CUDNN"], "cache_dir": "'$TMP/cache'"}'

step() {  # step CASE MODEL STAGE PLAN_JSON: copy MODEL's work folder (or reuse CASE's), set the plan, run STAGE
  local case=$1 model=$2 stage=$3 settings=$4 work=$TMP/$1
  [ -d "$work" ] || cp -r ".gpu-run/$model" "$work"
  python3.9 -c 'import json, sys; p = json.load(open(sys.argv[1])); [p.update(json.loads(a)) for a in sys.argv[2:]]; json.dump(p, open(sys.argv[1], "w"))' \
    "$work/plan.json" "$BASE" "$settings"
  echo "=== $case: $stage $settings" | tee -a "$OUT/proof.log"
  env -u PYTHONPATH PYTHONPATH="$PWD/scripts" python3.9 -m "trtkit_steps.$stage" "$work/plan.json" 2>&1 |
    tee -a "$OUT/proof.log" | sed -n "s/^::trtkit::/$case /p" >> "$OUT/events.txt"
  echo "=== $case: exit ${PIPESTATUS[0]}" | tee -a "$OUT/proof.log"
}

step origin-fp32 origin_lstm engine '{"precision": "fp32", "tf32": false}'
step origin-tf32 origin_lstm engine '{"precision": "fp32", "tf32": true}'
step origin-fp16 origin_lstm engine '{"precision": "fp16"}'
step origin-fp16-again origin_lstm engine '{"precision": "fp16"}'      # the timing cache must be hit
step origin-fp16-opt100k origin_lstm engine '{"precision": "fp16", "shapes": {"lstm_1_input": [1, 100000, 100000]}}'
step cnn-fp32 cnn_bn engine '{"precision": "fp32"}'
step cnn-fp16 cnn_bn engine '{"precision": "fp16"}'
step cnn-int8 cnn_bn engine '{"precision": "int8", "calib_data": "'$TMP'/cnn-int8/calib.npy"}'
step cnn-int8-again cnn_bn engine '{"precision": "int8", "calib_data": "'$TMP'/cnn-int8/calib.npy"}'  # calibration cache reused
B='{"mode": "bench", "bench": {"batches": [1, 64, 1024, 100000], "iterations": 50, "warmup": 5}}'
step origin-fp32 origin_lstm bench "$B"
step origin-fp16 origin_lstm bench "$B"
step origin-fp16-opt100k origin_lstm bench '{"mode": "bench", "bench": {"batches": [100000], "iterations": 50, "warmup": 5}}'
step cnn-fp16 cnn_bn bench '{"mode": "bench", "bench": {"batches": [1, 64, 1024, 8192], "iterations": 50, "warmup": 5}}'
step cnn-int8 cnn_bn bench '{"mode": "bench", "bench": {"batches": [1, 64, 1024, 8192], "iterations": 50, "warmup": 5}}'
ls -la "$OUT"
