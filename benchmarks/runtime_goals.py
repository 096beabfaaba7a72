"""Issue 9's goals as ratios, from one run on one GPU: trtkit.runtime (benchmarks/runtime_check.py, one file
per engine) against Keras 3 and a CUDA-graphed PyTorch version of the model (benchmarks/frameworks.py).

    python3 benchmarks/runtime_goals.py FRAMEWORKS.jsonl NAME=RUNTIME.jsonl [NAME=RUNTIME.jsonl ...] > goals.md

Refuses to divide figures measured on different GPUs. Prints Markdown: per engine, the GPU time of small
batches against PyTorch's graph (the same work: copy in, model, copy out), numpy-in-numpy-out time against
Keras' one-batch predict, batch 100000 against 25 ms, and the fill/chunk sweep where runtime_check made one.
"""
import json
import sys

SMALL_BATCHES = (1, 64)
KERAS_GOAL = 40.0
LARGE_BATCH, LARGE_GOAL_MS = 100000, 25.0


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def verdict(met):
    return "met" if met else "**not met**"


def runtime_gpu(lines):
    return next(line["host"]["gpu"] for line in lines if "host" in line)


def engine_tables(name, lines, frameworks):
    batches = {line["batch"]: line for line in lines if "batch" in line and "error" not in line}
    out = ["### %s" % name, "",
           "GPU time of one call, copies in and out included (trtkit.runtime: time_device; PyTorch: CUDA events "
           "around its graph's replay); ratio = best PyTorch / trtkit.runtime, 1 or more meets the goal.", "",
           "| batch | trtkit.runtime ms | PyTorch fp32 graph ms | PyTorch fp16 graph ms | ratio | goal |",
           "|---|---|---|---|---|---|"]
    for batch in SMALL_BATCHES:
        if batch in batches and batch in frameworks:
            ours, theirs = batches[batch]["device_ms"], frameworks[batch]
            best = min(theirs["torch-fp32"]["device_ms"], theirs["torch-fp16"]["device_ms"])
            out.append("| %d | %.4g | %.4g | %.4g | %.2f | %s |" % (
                batch, ours, theirs["torch-fp32"]["device_ms"], theirs["torch-fp16"]["device_ms"], best / ours,
                verdict(best >= ours)))
    out += ["", "numpy in, numpy out (medians): Keras 3 `predict` (one batch, torch backend, same GPU) against "
            "trtkit.runtime from the caller's array and from a `pinned_empty()` array.", "",
            "| batch | Keras predict ms | trtkit.runtime ms | Keras / trtkit.runtime | from pinned input ms | "
            "Keras / that | goal (40x) |", "|---|---|---|---|---|---|---|"]
    for batch, line in sorted(batches.items()):
        if batch in frameworks:
            keras_ms = frameworks[batch]["keras-predict"]["end_to_end_ms"]
            ratio, pinned = keras_ms / line["median_ms"], line.get("median_ms_pinned_input")
            pinned_ratio = keras_ms / pinned if pinned else None
            met = "met" if ratio >= KERAS_GOAL else (
                "met from a pinned input" if pinned_ratio and pinned_ratio >= KERAS_GOAL else verdict(False))
            out.append("| %d | %.4g | %.4g | %.1f | %s | %s | %s |" % (
                batch, keras_ms, line["median_ms"], ratio, "%.4g" % pinned if pinned else "",
                "%.1f" % pinned_ratio if pinned_ratio else "", met))
    if LARGE_BATCH in batches:
        line = batches[LARGE_BATCH]
        out += ["", "Batch %d, numpy in to numpy out: %.4g ms from the caller's array (%s), %.4g ms from a "
                "pinned_empty() array (%s); goal %g ms. GPU time: %.4g ms and %.4g ms." % (
                    LARGE_BATCH, line["median_ms"], verdict(line["median_ms"] <= LARGE_GOAL_MS),
                    line["median_ms_pinned_input"], verdict(line["median_ms_pinned_input"] <= LARGE_GOAL_MS),
                    LARGE_GOAL_MS, line["device_ms"], line["device_ms_pinned_input"])]
    sweep = [line["sweep"] for line in lines if "sweep" in line]
    if sweep:
        out += ["", "predict() at batch %d from the caller's array, by fill threads and chunk size (median ms):"
                % sweep[0]["batch"], "", "| fill threads | chunk MB | median ms |", "|---|---|---|"]
        out += ["| %d | %d | %.4g |" % (s["fill_threads"], s["stream_chunk_mb"], s["median_ms"]) for s in sweep]
    return out + [""]


def main(argv):
    framework_lines = read_lines(argv[0])
    gpu = framework_lines[0]["gpu"]
    frameworks = {line["batch"]: line for line in framework_lines if "batch" in line}
    out = ["## trtkit.runtime against the frameworks (issue 9's goals)", "",
           "GPU: %s. PyTorch %s, Keras %s on the %s backend (brought by the benchmark: the TensorRT image has "
           "no GPU Keras)." % (gpu, framework_lines[0]["torch"], framework_lines[0]["keras"],
                               framework_lines[0]["keras_backend"]), ""]
    for argument in argv[1:]:
        name, path = argument.split("=", 1)
        lines = read_lines(path)
        if runtime_gpu(lines) != gpu:
            raise SystemExit("%s ran on %s, the frameworks on %s: not divided" % (name, runtime_gpu(lines), gpu))
        out += engine_tables(name, lines, frameworks)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
