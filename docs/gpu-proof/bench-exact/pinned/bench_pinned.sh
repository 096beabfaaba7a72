# trtkit bench of an --exact-batches engine: the runtime's end-to-end and pinned-input rows
. benchmarks/gpu_proof/machine.sh .gpu-kit >/dev/null 2>&1
export TRTKIT_CACHE=/tmp/gpu-proof-cache
G=(--image trtkit/tensorrt --tag 8.6-py3 --gpus all --disable-tactic-sources CUBLAS,CUBLAS_LT,CUDNN --json --target engine --precision fp16)
$TRTKIT build .gpu-kit/work/origin_lstm "${G[@]}" --exact-batches 1,64,1024 --out /tmp/b/exact > $OUT/build-exact.json 2> $OUT/build-exact.log; echo "build exact: $?"
$TRTKIT bench /tmp/b/exact --image trtkit/tensorrt --tag 8.6-py3 --gpus all --json --batch 1,64,1024,100000 > $OUT/bench-exact.json 2> $OUT/bench-exact.log; echo "bench exact: $?"
tail -3 $OUT/bench-exact.log
