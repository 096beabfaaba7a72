# The A/B of run 4, as it ran on the GPU machine from the repository root, less a listing of the engines'
# layers that failed on TensorRT's JSON: the export before the Y_h rewrite beside run.sh goals-builds' engines.
. benchmarks/gpu_proof/machine.sh .gpu-kit >/dev/null 2>&1
export TRTKIT_CACHE=/tmp/gpu-proof-cache
mkdir -p $OUT/ab
$TRTKIT build .gpu-kit/work/origin_lstm_sliced --image trtkit/tensorrt --tag 8.6-py3 --gpus all --disable-tactic-sources CUBLAS,CUBLAS_LT,CUDNN --json --target engine --precision fp16 --out /tmp/gpu-proof-builds/goals-lstm-sliced > $OUT/ab/build-sliced.json 2> $OUT/ab/build-sliced.log; echo build-sliced=$?
cp /tmp/gpu-proof-builds/goals-lstm-sliced/trtkit.json $OUT/ab/manifest-goals-lstm-sliced.json
rt=$(mktemp -d); cp toolkit/runtime.py toolkit/runtime_cuda.py benchmarks/runtime_check.py $rt/
for round in 1 2; do for b in goals-lstm-sliced goals-lstm; do
docker run --rm --gpus all --network none -v "$rt:/rt:ro" -v "/tmp/gpu-proof-builds/$b:/out:ro" trtkit/tensorrt:8.6-py3 python3 /rt/runtime_check.py /out 1,64,1024 > $OUT/ab/runtime-$b-$round.jsonl 2> $OUT/ab/runtime-$b-$round.log; echo $b $round $?
grep '"batch"' $OUT/ab/runtime-$b-$round.jsonl | python3 -c "
import sys, json
for l in sys.stdin:
    d = json.loads(l); print(' ', d['batch'], d.get('median_ms'), d.get('device_ms'), d.get('max_abs_err_vs_keras'))"
done; done
