# trtkit bench of the default and the --exact-batches engine (the bench's engine rows pick the runtime's profile)
. benchmarks/gpu_proof/machine.sh .gpu-kit >/dev/null 2>&1
export TRTKIT_CACHE=/tmp/gpu-proof-cache
G=(--image trtkit/tensorrt --tag 8.6-py3 --gpus all --disable-tactic-sources CUBLAS,CUBLAS_LT,CUDNN --json --target engine --precision fp16)
B=(--image trtkit/tensorrt --tag 8.6-py3 --gpus all --json --batch 1,64,1024)
W=.gpu-kit/work/origin_lstm
$TRTKIT build $W "${G[@]}" --out /tmp/b/default > $OUT/build-default.json 2> $OUT/build-default.log; echo "build default: $?"
$TRTKIT build $W "${G[@]}" --exact-batches 1,64 --out /tmp/b/exact > $OUT/build-exact.json 2> $OUT/build-exact.log; echo "build exact: $?"
for n in default exact; do
  $TRTKIT bench /tmp/b/$n "${B[@]}" > $OUT/bench-$n.json 2> $OUT/bench-$n.log; echo "bench $n: $?"; tail -2 $OUT/bench-$n.log
done
