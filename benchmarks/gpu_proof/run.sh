#!/usr/bin/env bash
# benchmarks/gpu_proof/run.sh PHASE: trtkit on a real GPU, driven only through its command line.
#
#   run.sh export   any host with Docker and the stand-in image (no GPU needed): the origin LSTM and
#                   the CNN, Keras -> verified ONNX + reference, with Keras and ONNX Runtime timed on
#                   this host's CPU. Writes $WORK (default .gpu-kit/work).
#   run.sh builds   the GPU host (NVIDIA runtime, trtkit/tensorrt:8.6-py3, $WORK copied there):
#                   trtkit doctor, engine builds from those outputs (the default target, fp32 strict,
#                   fp16 twice for the timing cache and once replaying the first one's timing.cache
#                   strictly, CNN int8 with calibration data).
#   run.sh bench    then, on the same host: trtkit bench of the engines, and trtkit check: an engine as
#                   built, one whose record names another GPU, one whose plan is damaged.
#   run.sh baseline WHEEL   then: builds and bench again with another trtkit (an earlier version's wheel),
#                   on the same machine, into $PROOF/baseline, for report.py --baseline.
#   run.sh runtime  then: benchmarks/runtime_check.py (trtkit.runtime) on the engines, in the same image.
#   run.sh goals-builds   issue 9's goals, on their own: the origin LSTM at FP16 with the default profile
#                   (OPT 1024), with --exact-batches 1,64,1024 (a profile of its own for each), and with those
#                   and --io-precision fp16 (float16 inputs and outputs).
#   run.sh goals-bench   then: trtkit bench and trtkit check of the --exact-batches engines (float32 and float16
#                   I/O): the bench's trtkit-runtime rows, its pinned-input row from Engine.pinned_copy.
#   run.sh preview-study [BATCHES]   one-batch fp16-I/O engines with TensorRT 8.6's FASTER_DYNAMIC_SHAPES_0805
#                   preview feature on (its default) and off: benchmarks/preview_study.py in the image.
#   run.sh lstm-study   the LSTM in every form TensorRT 8.6 takes, against cuDNN's: on the GPU host itself, with
#                   the GPU kit's Python at /tmp/trt86 (no Docker: Nsight Compute is on the host, not in the image).
#                   benchmarks/lstm_study.py builds and times the forms that benchmarks/lstm_forms.py wrote to
#                   $WORK/lstm-forms (on any host with onnx), and TensorRT's RNNv2 layer; ncu lists the kernels of
#                   one batch-1 call of three of them and of the PyTorch version (benchmarks/kernel_census.py).
#   run.sh study    where the engine's GPU time goes (issue 9: at batch 1 and 64 the engine is the limit): the
#                   origin LSTM built with one-batch profiles (--shapes 1/1/1, 64/64/64, 1024/1024/1024) and at
#                   FP32, beside the default engine; benchmarks/layer_profile.py on each, and runtime_check
#                   (graph replay) on the default and one-batch engines.
#   run.sh study-exact   builder settings on top of --exact-batches 1,64: FP16 at --opt-level 3 (the default) and
#                   5, FP32, FP32 with --tf32; runtime_check (graph replay) on each at batch 1 and 64.
#   run.sh goals    then: runtime_check on each in the image; benchmarks/frameworks.py
#                   on this host's PyTorch with Keras 3 from $KERAS_WHEELS; benchmarks/runtime_goals.py divides
#                   them into $PROOF/goals.md.
#   run.sh precision-export   any host with Docker and the stand-in image: the origin LSTM, the CNN, the zoo's
#                   Transformer encoder and masked LSTMs (Keras 3 and Keras 2, Loops), and a model whose
#                   layer 'big' overflows FP16 at --precision fp16, and the LSTM, the CNN and the Transformer at
#                   int8 (--calib-data), and the zoo's Keras 2 ResNet50 at both (a CNN large enough for INT8 to
#                   pay: the small CNN's INT8 was no faster than its FP16 on an H100), --target onnx: each output
#                   holds model.onnx and its verified rewrite (model.fp16.onnx / model.int8.onnx).
#   run.sh precision-builds   the GPU host: each of those built twice, --precision-recipe flags (TensorRT's
#                   builder flags on model.onnx) and rewrite (the rewritten model, each layer asked to keep its
#                   type); resumable (a build whose exit proof.log records is not run again), so a call's time
#                   limit can split it; PRECISION_BUILD_ARGS="--opt-level 2" adds options to every one of them
#                   (both recipes alike, so they still compare; ResNet50's Q/DQ build outlasts a call at level 3);
#                   PRECISION_RECIPES="auto" builds with the default recipe instead (precision-runtime alike);
#                   PRECISION_DEADLINE_S, as ZOO_DEADLINE_S, starts no build after that many seconds.
#                   run.sh precision-runtime: then runtime_check on every one of those engines
#                   at batch 1, 64 and 1024: speed and error side by side, in the same run
#                   (PRECISION_ONLY="cnn-fp16 cnn-int8" runs some of them); and capture_check.py on each (issue
#                   21: no TensorRT "Error Code 3" on stderr where TensorRT cannot capture a CUDA graph), and
#                   benchmarks/layer_profile.py on the origin LSTM's two FP16 engines (where the rewrite's time goes)
#                   and on the CNN's and ResNet50's FP16 and INT8 ones (what INT8 Q/DQ buys), those built.
#   run.sh rewrite-types   the GPU host, after precision-export: benchmarks/rewrite_types.py on the FP16 exports
#                   of REWRITE_TYPES_ONLY (default "resnet-fp16 cnn-fp16 origin-fp16"), each model.fp16.onnx built
#                   with every way of asking TensorRT 8.6 for its types (trtkit's, OBEY, output types too, FP32 asks
#                   only, the FP16 flag alone), at --opt-level 2; report.py --rewrite-types makes the tables.
#   run.sh zoo-export   any host with Docker and the stand-in image: benchmarks/zoo.py, every model of the zoo
#                   exported to a verified ONNX (FP32) and its Keras reference, into $ZOO (default .gpu-kit/zoo).
#   run.sh zoo-builds   the GPU host: each of those built as an FP32 and an FP16 engine and verified against Keras,
#                   $ZOO_JOBS builds at a time (default 3: the zoo's goal is builds that verify, not their speed;
#                   ZOO_PRECISIONS="fp16" builds one of the two; ZOO_DEADLINE_S splits it over calls;
#                   ZOO_ONLY="k3_vit.keras ..." builds those models alone; ZOO_BUILD_ARGS="--opt-level 1" adds
#                   options to each build, for large models a call's time limit cannot fit otherwise);
#                   report.py --zoo makes their table, $PROOF/zoo-gpu.md.
#   run.sh zoo-bench   then: trtkit bench of the FP16 engines of ZOO_BENCH's models, and Keras 3 on the torch
#                   backend on the same GPU (benchmarks/frameworks.py, Keras from $KERAS_WHEELS) on the same inputs;
#                   and of ZOO_LOOP_PAIR's (one model as GRU nodes and as Loops).
# The GPU phases write logs, --json results and manifests to $PROOF, packed into $OUT/proof.tar.gz.
#
# benchmarks/gpu_proof/report.py turns $PROOF into docs/gpu-proof.md. How this project's GPU machine
# (no NGC, no NVIDIA Container Toolkit) gets Docker and the image: benchmarks/gpu_proof/machine.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
PHASE=${1:?usage: run.sh export|builds|bench|baseline WHEEL|runtime|goals-builds|goals|precision-export|precision-builds|rewrite-types}
WORK=$(realpath -m "${WORK:-.gpu-kit/work}")
ZOO=$(realpath -m "${ZOO:-.gpu-kit/zoo}")
ZOO_BENCH=(k3_transformer_encoder.keras k3_vit.keras k3_mobilenet_v2.keras)
# One model (benchmarks/zoo_models.py's stacked_gru) two ways: tf2onnx makes GRU nodes of it, Keras 3's export
# Loops; their engines side by side are what a Loop costs (issue 22's loop warning).
ZOO_LOOP_PAIR=(k2_stacked_gru.h5 k3_stacked_gru.keras)
TRTKIT=${TRTKIT:-$(command -v trtkit || echo "$PWD/.venv/bin/trtkit")}   # make .venv/bin/trtkit, when not on PATH
IMAGE=(--image trtkit/tensorrt --tag 8.6-py3)
# Images whose cuBLAS/cuDNN are stubs (the GPU kit's) must build without those tactic sources.
TACTICS=(${DISABLE_TACTIC_SOURCES:+--disable-tactic-sources "$DISABLE_TACTIC_SOURCES"})

recorded() {  # recorded NAME: proof.log has NAME's exit, so a resumed phase does not run it again
  grep -q "^=== $1: exit" "$PROOF/proof.log" 2>/dev/null
}
FAILED=0
run() {  # run NAME ARGS...: one trtkit command, its --json on stdout to NAME.json, its log to NAME.log
  local name=$1; shift
  echo "=== $name: trtkit $*" | tee -a "$PROOF/proof.log"
  $TRTKIT "$@" > "$PROOF/$name.json" 2> "$PROOF/$name.log"
  local code=$?
  tail -3 "$PROOF/$name.log" | tee -a "$PROOF/proof.log"
  echo "=== $name: exit $code" | tee -a "$PROOF/proof.log"
  [ "$code" = 0 ] || FAILED=$((FAILED + 1))
}
exports_done() {  # the end of an export phase: staging stops here when one export failed (the GPU phases go on)
  [ "$FAILED" = 0 ] || { echo "run.sh $PHASE: $FAILED export(s) failed: $PROOF/proof.log" >&2; exit 1; }
  exit 0
}
if [[ $PHASE == *export ]] && ! docker image inspect trtkit/standin:19.07-py3 >/dev/null 2>&1; then
  echo "run.sh $PHASE: needs the stand-in image trtkit/standin:19.07-py3 (make setup builds it)" >&2
  exit 1
fi

if [ "$PHASE" = export ]; then
  PROOF=$WORK/export-log
  rm -rf "$WORK/origin_lstm" "$WORK/origin_lstm_unrolled" "$WORK/cnn_bn" "$PROOF"; mkdir -p "$PROOF"
  docker run --rm -u "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD:/repo" -v "$WORK:/work" -w /repo \
    trtkit/standin:19.07-py3 python3 -c "import numpy as np; np.save('/work/cnn_calib.npy', \
np.random.RandomState(1).standard_normal((256, 32, 32, 3)).astype('float32'))" &&
  docker run --rm -u "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD:/repo" -v "$WORK:/work" -w /repo \
    trtkit/standin:19.07-py3 python3 examples/make_models.py /work origin_lstm.h5 cnn_bn.h5 >/dev/null 2>&1 || exit 1
  STANDIN=(--image trtkit/standin --tag 19.07-py3 --gpus none --target onnx --json)
  run export-origin build "$WORK/origin_lstm.h5" "${STANDIN[@]}" --out "$WORK/origin_lstm" --bench --batch 1,64,1024,100000
  run export-origin-unrolled build "$WORK/origin_lstm.h5" --image trtkit/standin --tag 19.07-py3 --gpus none \
    --target onnx --json --unroll-lstm --out "$WORK/origin_lstm_unrolled"
  run export-cnn build "$WORK/cnn_bn.h5" "${STANDIN[@]}" --out "$WORK/cnn_bn" --bench --batch 1,64,1024
  exports_done
fi

if [ "$PHASE" = zoo-export ]; then
  "${PYTHON:-.venv/bin/python}" benchmarks/zoo.py --models "$ZOO/models" --results "$ZOO/results.json"
  exit
fi

PRECISION_EXPORTS=(origin-fp16:origin_lstm.h5:fp16 origin-int8:origin_lstm.h5:int8 cnn-fp16:cnn_bn.h5:fp16
                   cnn-int8:cnn_bn.h5:int8 transformer-fp16:k2_transformer_encoder.h5:fp16
                   transformer-int8:k2_transformer_encoder.h5:int8 overflow-fp16:fp16_overflow.h5:fp16
                   masked-lstm-fp16:k3_masked_lstm.keras:fp16 masking-lstm-fp16:k2_masking_lstm.h5:fp16
                   resnet-fp16:k2_resnet50.h5:fp16 resnet-int8:k2_resnet50.h5:int8)
# PRECISION_RECIPES="auto": the default recipe's builds instead (on TensorRT 8: flags, and the rewrite where the
# flags' engine misses: the Keras 2 masked LSTM's did)
read -ra RECIPES <<< "${PRECISION_RECIPES:-flags rewrite}"
if [ -n "${PRECISION_ONLY:-}" ]; then   # names of some of them ("cnn-fp16 cnn-int8"): a shorter run of those alone
  for export in "${PRECISION_EXPORTS[@]}"; do
    [[ " $PRECISION_ONLY " == *" ${export%%:*} "* ]] && only+=("$export")
  done
  PRECISION_EXPORTS=("${only[@]}")
fi
calibration() {  # calibration MODEL PRECISION: --calib-data for an int8 export of MODEL (precision-export makes the files)
  [ "$2" = int8 ] && echo --calib-data "$WORK/precision/${1%.*}_calib.npy"
}
if [ "$PHASE" = precision-export ]; then
  PROOF=$WORK/precision/log
  rm -rf "$WORK/precision"; mkdir -p "$PROOF"
  docker run --rm -u "$(id -u):$(id -g)" -e HOME=/tmp -v "$PWD:/repo" -v "$WORK/precision:/work" -w /repo \
    trtkit/standin:19.07-py3 sh -c "python3 examples/make_models.py /work origin_lstm.h5 cnn_bn.h5 fp16_overflow.h5 && \
python3 benchmarks/zoo_models.py /work k2_transformer_encoder.h5 k3_masked_lstm.keras k2_masking_lstm.h5 k2_resnet50.h5 && \
python3 -c \"import numpy as np; \
[np.save('/work/%s_calib.npy' % name, np.random.RandomState(1).standard_normal((256,) + shape).astype('float32')) \
for name, shape in (('cnn_bn', (32, 32, 3)), ('origin_lstm', (11, 192)), ('k2_transformer_encoder', (16, 32)), \
('k2_resnet50', (32, 32, 3)))]\"" \
    >/dev/null 2>&1 || exit 1
  for export in "${PRECISION_EXPORTS[@]}"; do
    IFS=: read -r name model precision <<< "$export"
    calib=($(calibration "$model" "$precision"))
    run "export-$name" build "$WORK/precision/$model" --image trtkit/standin --tag 19.07-py3 --gpus none \
      --target onnx --json --precision "$precision" "${calib[@]}" --out "$WORK/precision/$name"
  done
  exports_done
fi

# PROOF, BUILDS and TRTKIT_CACHE may be set to run a second trtkit (a baseline) beside the first.
OUT=${OUT:-/tmp/gpu-proof-out}
PROOF=${PROOF:-/tmp/gpu-proof}
BUILDS=${BUILDS:-/tmp/gpu-proof-builds}
export TRTKIT_CACHE=${TRTKIT_CACHE:-/tmp/gpu-proof-cache}
pack() {
  for build in "$BUILDS"/*/; do cp "$build/trtkit.json" "$PROOF/manifest-$(basename "$build").json"; done
  rm -f "$PROOF"/triton/*/1/model.plan      # the engines are in the builds; their configs are what is shown
  for export in "$WORK"/*/trtkit.json; do cp "$export" "$PROOF/export-manifest-$(basename "$(dirname "$export")").json"; done
  mkdir -p "$OUT"; tar -C "$PROOF" -czf "$OUT/proof.tar.gz" .; cp "$PROOF/proof.log" "$OUT/"
}
start_proof() {  # the folders, and the GPU and trtkit every later table names
  mkdir -p "$PROOF" "$BUILDS"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$PROOF/gpu.txt" 2>&1
  $TRTKIT --version > "$PROOF/version.txt"
}

if [ "$PHASE" = baseline ]; then   # the same builds and benches with another trtkit, into $PROOF/baseline
  WHEEL=${2:?usage: run.sh baseline TRTKIT_WHEEL}
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-baseline "$WHEEL" || exit 1
  export PYTHONPATH=/tmp/site-baseline:$PYTHONPATH PROOF=$PROOF/baseline BUILDS=$BUILDS-baseline \
    TRTKIT_CACHE=$TRTKIT_CACHE-baseline OUT=$OUT-baseline
  bash "$0" builds && bash "$0" bench
  exit
fi

with_runtime() {  # with_runtime SCRIPT...: a new folder holding the scripts and trtkit.runtime as trtkit_runtime
  local rt; rt=$(mktemp -d)
  cp -r toolkit/runtime "$rt/trtkit_runtime"; rm -rf "$rt/trtkit_runtime/__pycache__"; cp "$@" "$rt/"
  echo "$rt"
}

runtime_check() {  # runtime_check BUILD BATCHES [--sweep]: trtkit.runtime on a build, in the image that built it
  local name=$1; shift
  local rt; rt=$(with_runtime benchmarks/runtime_check.py)
  echo "=== runtime-$name" | tee -a "$PROOF/proof.log"
  docker run --rm --gpus all --network none -v "$rt:/rt:ro" -v "$BUILDS/$name:/out:ro" trtkit/tensorrt:8.6-py3 \
    python3 /rt/runtime_check.py /out "$@" > "$PROOF/runtime-$name.jsonl" 2> "$PROOF/runtime-$name.log"
  echo "=== runtime-$name: exit $?" | tee -a "$PROOF/proof.log"
  tail -n 5 "$PROOF/runtime-$name.jsonl" "$PROOF/runtime-$name.log" | tee -a "$PROOF/proof.log"
}

layer_profile() {  # layer_profile BUILD BATCHES: TensorRT's per-layer times of a build, in the image that built it
  local name=$1; shift
  local rt; rt=$(with_runtime benchmarks/layer_profile.py)
  docker run --rm --gpus all --network none -v "$rt:/rt:ro" -v "$BUILDS/$name:/out:ro" trtkit/tensorrt:8.6-py3 \
    python3 /rt/layer_profile.py /out "$@" > "$PROOF/layers-$name.jsonl" 2> "$PROOF/layers-$name.log"
  echo "=== layers-$name: exit $?" | tee -a "$PROOF/proof.log"
  cut -c1-300 "$PROOF/layers-$name.jsonl" | tail -n +2 | tee -a "$PROOF/proof.log"
}

if [ "$PHASE" = runtime ]; then   # trtkit.runtime on the engines just built, in the image that built them
  for build in origin-fp32:1,64,1024,100000 origin-fp16:1,64,1024,100000 cnn-int8:1,64,1024; do
    runtime_check "${build%%:*}" "${build#*:}"
  done
  pack
  exit 0
fi

if [ "$PHASE" = precision-builds ]; then   # the two recipes on TensorRT 8.6, side by side, in one run
  start_proof
  for export in "${PRECISION_EXPORTS[@]}"; do
    IFS=: read -r name model precision <<< "$export"
    calib=($(calibration "$model" "$precision"))
    for recipe in "${RECIPES[@]}"; do
      recorded "build-$name-$recipe" && continue   # resumable, as zoo-builds (ResNet50's four may take two calls)
      [ "$SECONDS" -lt "${PRECISION_DEADLINE_S:-100000}" ] || break 2   # no build starts after it: the pack runs
      run "build-$name-$recipe" build "$WORK/precision/$name" "${IMAGE[@]}" --gpus all "${TACTICS[@]}" --json \
        --target engine --precision "$precision" --precision-recipe "$recipe" "${calib[@]}" ${PRECISION_BUILD_ARGS:-} \
        --out "$BUILDS/$name-$recipe"
    done
  done
  pack
  exit 0
fi

if [ "$PHASE" = precision-runtime ]; then   # then: trtkit.runtime on each of those engines, speed and error
  for export in "${PRECISION_EXPORTS[@]}"; do
    for recipe in "${RECIPES[@]}"; do runtime_check "${export%%:*}-$recipe" 1,64,1024; done
  done
  echo "=== capture-check" | tee -a "$PROOF/proof.log"   # issue 21: TensorRT's Error Code 3 kept off stderr
  built=()    # these builds' engines only (zoo-builds writes to $BUILDS too)
  for export in "${PRECISION_EXPORTS[@]}"; do
    for recipe in "${RECIPES[@]}"; do
      [ -f "$BUILDS/${export%%:*}-$recipe/model.plan" ] && built+=("/builds/${export%%:*}-$recipe/")
    done
  done
  docker run --rm --gpus all --network none -v "$PWD:/repo:ro" -v "$BUILDS:/builds:ro" trtkit/tensorrt:8.6-py3 \
    python3 /repo/benchmarks/gpu_proof/capture_check.py "${built[@]}" > "$PROOF/capture-check.jsonl" \
    2> "$PROOF/capture-check.log"
  echo "=== capture-check: exit $? (0 passed, 1 failed, 3 every engine captured)" | tee -a "$PROOF/proof.log"
  # where the time goes: the origin LSTM's two FP16 engines, and the CNNs' FP16 and INT8 ones (does Q/DQ INT8 pay?
  # does the rewrite, its types now followed on TensorRT 8, run FP16 kernels?)
  for build in origin-fp16-{flags,rewrite} {cnn,resnet}-{fp16,int8}-{flags,rewrite}; do
    [ -f "$BUILDS/$build/model.plan" ] && layer_profile "$build" 1,64,1024
  done
  pack
  exit 0
fi

if [ "$PHASE" = rewrite-types ]; then   # how TensorRT 8.6 takes the FP16 rewrite, each way of asking side by side
  start_proof
  rt=$(with_runtime benchmarks/rewrite_types.py benchmarks/layer_profile.py); cp -r scripts/trtkit_steps "$rt/"
  for name in ${REWRITE_TYPES_ONLY:-resnet-fp16 cnn-fp16 origin-fp16}; do
    docker run --rm --gpus all --network none -v "$rt:/rt:ro" -v "$WORK/precision/$name:/export:ro" \
      trtkit/tensorrt:8.6-py3 python3 /rt/rewrite_types.py /export --opt-level "${REWRITE_TYPES_OPT_LEVEL:-2}" \
      --disable-tactic-sources "${DISABLE_TACTIC_SOURCES:-}" > "$PROOF/rewrite-types-$name.jsonl" \
      2> "$PROOF/rewrite-types-$name.log"
    echo "=== rewrite-types-$name: exit $?" | tee -a "$PROOF/proof.log"
    cut -c1-300 "$PROOF/rewrite-types-$name.jsonl" | tail -n +2 | tee -a "$PROOF/proof.log"
  done
  pack
  exit 0
fi

if [ "$PHASE" = zoo-builds ]; then   # the zoo as engines: FP32 and FP16, each verified against Keras
  # Without them the loop below would build nothing and exit 0 (machine.sh unpacks the zoo once every part is there).
  compgen -G "$ZOO/models-out/*/" >/dev/null || { echo "run.sh: no zoo exports in $ZOO/models-out (run.sh zoo-export;" \
    "on the GPU machine, every zoo.tar part)" >&2; exit 1; }
  start_proof
  # Resumable: a build whose exit proof.log records is not run again, and no build starts after
  # $ZOO_DEADLINE_S seconds, so a device call's time limit splits the zoo over calls (all FP16 ones first).
  for precision in ${ZOO_PRECISIONS:-fp16 fp32}; do
    for export in "$ZOO"/models-out/*/; do
      model=$(basename "$export"); name=$model-$precision
      [ -z "${ZOO_ONLY:-}" ] || [[ " $ZOO_ONLY " == *" $model "* ]] || continue
      recorded "zoo-$name" && continue
      while [ "$(jobs -rp | wc -l)" -ge "${ZOO_JOBS:-3}" ]; do wait -n; done
      [ "$SECONDS" -lt "${ZOO_DEADLINE_S:-100000}" ] || break 2
      run "zoo-$name" build "$export" "${IMAGE[@]}" --gpus all "${TACTICS[@]}" --json --target engine \
        --precision "$precision" ${ZOO_BUILD_ARGS:-} --out "$BUILDS/zoo-$name" &
    done
  done
  wait
  python3 benchmarks/gpu_proof/report.py "$PROOF" --zoo > "$PROOF/zoo-gpu.md" && tee -a "$PROOF/proof.log" < "$PROOF/zoo-gpu.md"
  pack
  exit 0
fi

if [ "$PHASE" = zoo-bench ]; then   # then: trtkit bench of FP16 zoo engines, and Keras 3 on this GPU's PyTorch
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-keras "${KERAS_WHEELS:?}"/*.whl || exit 1
  for model in "${ZOO_BENCH[@]}"; do
    run "zoo-bench-$model" bench "$BUILDS/zoo-$model-fp16" "${IMAGE[@]}" --gpus all --json --batch 1,64,1024
    PYTHONPATH=/tmp/site-keras:$PYTHONPATH KERAS_BACKEND=torch FRAMEWORKS_BUDGET_S=2 python3 benchmarks/frameworks.py \
      "$ZOO/models/$model" "$ZOO/models-out/$model" 1,64,1024 > "$PROOF/keras3-$model.jsonl" 2> "$PROOF/keras3-$model.log"
    echo "=== keras3-$model: exit $?" | tee -a "$PROOF/proof.log"
  done
  for model in "${ZOO_LOOP_PAIR[@]}"; do
    run "zoo-bench-$model" bench "$BUILDS/zoo-$model-fp16" "${IMAGE[@]}" --gpus all --json --batch 1,64,1024
  done
  pack
  exit 0
fi

if [ "$PHASE" = goals-builds ]; then
  mkdir -p "$PROOF" "$BUILDS"
  GPU=("${IMAGE[@]}" --gpus all "${TACTICS[@]}" --json --target engine --precision fp16)
  run goals-build-lstm build "$WORK/origin_lstm" "${GPU[@]}" --out "$BUILDS/goals-lstm"
  run goals-build-lstm-exact build "$WORK/origin_lstm" "${GPU[@]}" --exact-batches 1,64,1024 \
    --out "$BUILDS/goals-lstm-exact"
  run goals-build-lstm-half build "$WORK/origin_lstm" "${GPU[@]}" --exact-batches 1,64,1024 --io-precision fp16 \
    --out "$BUILDS/goals-lstm-half"
  pack
  exit 0
fi


if [ "$PHASE" = study ]; then
  mkdir -p "$PROOF" "$BUILDS"
  GPU=("${IMAGE[@]}" --gpus all "${TACTICS[@]}" --json --target engine)
  run study-build-default build "$WORK/origin_lstm" "${GPU[@]}" --precision fp16 --out "$BUILDS/study-default"
  for batch in 1 64 1024; do
    run "study-build-static$batch" build "$WORK/origin_lstm" "${GPU[@]}" --precision fp16 \
      --shapes "lstm_1_input:$batch/$batch/$batch" --out "$BUILDS/study-static$batch"
  done
  run study-build-fp32 build "$WORK/origin_lstm" "${GPU[@]}" --precision fp32 --out "$BUILDS/study-fp32"
  for build in study-default:1,64,1024 study-fp32:1,64,1024 study-static1:1 study-static64:64 study-static1024:1024; do
    layer_profile "${build%%:*}" "${build#*:}"
  done
  for build in study-default:1,64,1024 study-static1:1 study-static64:64 study-static1024:1024; do
    runtime_check "${build%%:*}" "${build#*:}"   # GPU time with graph replay, beside the default engine
  done
  pack
  exit 0
fi

if [ "$PHASE" = study-exact ]; then
  mkdir -p "$PROOF" "$BUILDS"
  EXACT=("${IMAGE[@]}" --gpus all "${TACTICS[@]}" --json --target engine --exact-batches 1,64)
  for variant in "fp16:--precision fp16" "fp16-opt5:--precision fp16 --opt-level 5" "fp32:--precision fp32" \
                 "tf32:--precision fp32 --tf32"; do
    name=exact-${variant%%:*}
    read -ra settings <<< "${variant#*:}"
    run "build-$name" build "$WORK/origin_lstm" "${EXACT[@]}" "${settings[@]}" --out "$BUILDS/$name"
    runtime_check "$name" 1,64
  done
  pack
  exit 0
fi

if [ "$PHASE" = goals ]; then
  for build in goals-lstm goals-lstm-exact goals-lstm-half; do runtime_check "$build" 1,64,1024,100000; done
  echo "=== frameworks" | tee -a "$PROOF/proof.log"
  python3 -m pip install -q --no-index --no-deps --target /tmp/site-keras "${KERAS_WHEELS:?}"/*.whl &&
  PYTHONPATH=/tmp/site-keras:$PYTHONPATH KERAS_BACKEND=torch python3 benchmarks/frameworks.py \
    "$WORK/origin_lstm.h5" "$WORK/origin_lstm" 1,64,1024,100000 > "$PROOF/frameworks.jsonl" 2> "$PROOF/frameworks.log"
  echo "=== frameworks: exit $?" | tee -a "$PROOF/proof.log"
  python3 benchmarks/runtime_goals.py "$PROOF/frameworks.jsonl" "lstm=$PROOF/runtime-goals-lstm.jsonl" \
    "lstm-exact=$PROOF/runtime-goals-lstm-exact.jsonl" "lstm-half=$PROOF/runtime-goals-lstm-half.jsonl" \
    > "$PROOF/goals.md" 2>> "$PROOF/proof.log"
  cat "$PROOF/goals.md" >> "$PROOF/proof.log"
  pack
  exit 0
fi

if [ "$PHASE" = preview-study ]; then   # TensorRT 8.6's FASTER_DYNAMIC_SHAPES_0805 on and off (one-batch engines)
  mkdir -p "$PROOF"
  rt=$(with_runtime benchmarks/preview_study.py)
  echo "=== preview-study" | tee -a "$PROOF/proof.log"
  docker run --rm --gpus all --network none -v "$rt:/rt:ro" -v "$WORK/origin_lstm:/out:ro" trtkit/tensorrt:8.6-py3 \
    python3 /rt/preview_study.py /out "${2:-1,64,1024}" > "$PROOF/preview-study.jsonl" 2> "$PROOF/preview-study.log"
  echo "=== preview-study: exit $?" | tee -a "$PROOF/proof.log"
  cat "$PROOF/preview-study.jsonl" | tee -a "$PROOF/proof.log"; tail -5 "$PROOF/preview-study.log"
  pack
  exit 0
fi

if [ "$PHASE" = lstm-study ]; then   # on the host: the kit's TensorRT and the host's ncu and PyTorch
  mkdir -p "$PROOF"
  rt=$(with_runtime benchmarks/preview_study.py benchmarks/lstm_study.py)
  kit() { (. /tmp/trt86/env.sh && env -u PYTHONPATH "$@"); }
  echo "=== lstm-study" | tee -a "$PROOF/proof.log"
  kit python3.9 "$rt/lstm_study.py" "$WORK/lstm-forms" "$WORK/origin_lstm" "${2:-1,64}" \
    > "$PROOF/lstm-study.jsonl" 2> "$PROOF/lstm-study.log"
  echo "=== lstm-study: exit $?" | tee -a "$PROOF/proof.log"
  grep '^{' "$PROOF/lstm-study.jsonl" | tee -a "$PROOF/proof.log"
  NCU=(ncu --metrics gpu__time_duration.sum --csv)
  for form in node scan rnnv2; do
    kit "${NCU[@]}" python3.9 "$rt/lstm_study.py" --eager "/tmp/lstm-study-$form-1.plan" 1 \
      > "$PROOF/kernels-$form.csv" 2>> "$PROOF/lstm-study.log"
  done
  "${NCU[@]}" python3 benchmarks/kernel_census.py torch 1 > "$PROOF/kernels-torch.csv" 2>> "$PROOF/lstm-study.log"
  python3 benchmarks/kernel_census.py table "$PROOF"/kernels-*.csv > "$PROOF/kernels.md" 2>> "$PROOF/proof.log"
  cat "$PROOF/kernels.md" >> "$PROOF/proof.log"
  pack
  exit 0
fi

if [ "$PHASE" = goals-bench ]; then   # after goals-builds: the engines through trtkit bench and trtkit check
  for build in goals-lstm-exact goals-lstm-half; do
    run "bench-$build" bench "$BUILDS/$build" "${IMAGE[@]}" --gpus all --json --batch 1,64,1024,100000
    run "check-$build" check "$BUILDS/$build" "${IMAGE[@]}" --gpus all --json
  done
  pack
  exit 0
fi

if [ "$PHASE" = bench ]; then
  BENCH=("${IMAGE[@]}" --gpus all --json)
  run bench-origin-fp32 bench "$BUILDS/origin-fp32" "${BENCH[@]}" --batch 1,64,1024,100000
  run bench-origin-fp16 bench "$BUILDS/origin-fp16" "${BENCH[@]}" --batch 1,64,1024,100000
  run bench-cnn-int8 bench "$BUILDS/cnn-int8" "${BENCH[@]}" --batch 1,64,1024
  CHECK=("${IMAGE[@]}" --gpus all --json)
  run check-origin-fp16 check "$BUILDS/origin-fp16" "${CHECK[@]}"
  cp -r "$BUILDS/origin-fp16" "$BUILDS/other-gpu"
  python3 -c "import json, sys; p = sys.argv[1]; m = json.load(open(p)); m['engine']['gpu'] = 'NVIDIA A100-SXM4-80GB'
m['engine']['compute_capability'] = '8.0'; json.dump(m, open(p, 'w'))" "$BUILDS/other-gpu/trtkit.json"
  run check-other-gpu check "$BUILDS/other-gpu" "${CHECK[@]}"
  cp -r "$BUILDS/origin-fp16" "$BUILDS/damaged"
  head -c 100000 "$BUILDS/origin-fp16/model.plan" > "$BUILDS/damaged/model.plan"
  run check-damaged check "$BUILDS/damaged" "${CHECK[@]}"
  pack
  exit 0
fi

[ "$PHASE" = builds ] || { echo "unknown phase $PHASE (export, builds or bench)" >&2; exit 2; }
rm -rf "$PROOF" "$BUILDS"; mkdir -p "$PROOF" "$BUILDS"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$PROOF/gpu.txt" 2>&1
docker image inspect -f '{{.Id}} {{.Size}}' trtkit/tensorrt:8.6-py3 > "$PROOF/image.txt"
$TRTKIT --version > "$PROOF/version.txt"
$TRTKIT doctor > "$PROOF/doctor.txt" 2>&1; echo "doctor: exit $?" >> "$PROOF/doctor.txt"
GPU=("${IMAGE[@]}" --gpus all "${TACTICS[@]}" --json)
ORIGIN=$WORK/origin_lstm
CNN=$WORK/cnn_bn
run origin-default build "$ORIGIN" "${GPU[@]}" --out "$BUILDS/origin-default"       # no --target: the probe chooses
run origin-fp32 build "$ORIGIN" "${GPU[@]}" --target engine --precision fp32 --out "$BUILDS/origin-fp32"
run origin-fp16 build "$ORIGIN" "${GPU[@]}" --target engine --precision fp16 --out "$BUILDS/origin-fp16" \
  --triton-repo "$PROOF/triton"
run origin-fp16-again build "$ORIGIN" "${GPU[@]}" --target engine --precision fp16 --out "$BUILDS/origin-fp16-again"
# The first FP16 build's own timing cache replayed, then strictly: every tactic must come from it.
run origin-fp16-replayed build "$ORIGIN" "${GPU[@]}" --target engine --precision fp16 \
  --timing-cache "$BUILDS/origin-fp16/timing.cache" --out "$BUILDS/origin-fp16-replayed"
run origin-fp16-strict build "$ORIGIN" "${GPU[@]}" --target engine --precision fp16 \
  --timing-cache "$BUILDS/origin-fp16/timing.cache" --strict-timing-cache --out "$BUILDS/origin-fp16-strict"
run cnn-fp32 build "$CNN" "${GPU[@]}" --target engine --precision fp32 --out "$BUILDS/cnn-fp32"
run cnn-fp16 build "$CNN" "${GPU[@]}" --target engine --precision fp16 --out "$BUILDS/cnn-fp16"
run cnn-int8 build "$CNN" "${GPU[@]}" --target engine --precision int8 --calib-data "$WORK/cnn_calib.npy" \
  --out "$BUILDS/cnn-int8" --triton-repo "$PROOF/triton"
pack
