"""Issue 9's goals as ratios, from one run on one GPU: trtkit.runtime (benchmarks/runtime_check.py, one file
per engine) against Keras 3 and a CUDA-graphed PyTorch version of the model (benchmarks/frameworks.py).

    python3 benchmarks/runtime_goals.py FRAMEWORKS.jsonl NAME=RUNTIME.jsonl [NAME=RUNTIME.jsonl ...] > goals.md

Refuses to divide figures measured on different GPUs. Prints Markdown: per engine, the GPU time of small
batches against PyTorch's graph (the same work: copy in, model, copy out), numpy-in-numpy-out time against
Keras' one-batch predict from each form of input (the caller's float32 array; for an engine with float16 inputs,
a float16 array; a page-locked copy in the engine's types), batch 100000 against 25 ms, and the fill/chunk sweep
where runtime_check made one.
"""
import json
import sys

SMALL_BATCHES = (1, 64)
KERAS_GOAL = 40.0
LARGE_BATCH, LARGE_GOAL_MS = 100000, 25.0
# The forms of input runtime_check times (the median's key; "device_ms..." with the same ending is its GPU time).
INPUT_FORMS = (("the caller's float32 array", "median_ms"),
               ("an array of the engine's types", "median_ms_engine_types"),
               ("a page-locked copy", "median_ms_pinned_input"))


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
            "trtkit.runtime from each form of input (Keras / trtkit.runtime in brackets).", "",
            "| batch | Keras predict ms | " + " | ".join(label for label, _ in INPUT_FORMS) + " | goal (40x) |",
            "|---|---|" + "---|" * len(INPUT_FORMS) + "---|"]
    for batch, line in sorted(batches.items()):
        if batch in frameworks:
            keras_ms = frameworks[batch]["keras-predict"]["end_to_end_ms"]
            cells = ["%.4g (%.1fx)" % (line[key], keras_ms / line[key]) if key in line else ""
                     for _, key in INPUT_FORMS]
            met = [label for label, key in INPUT_FORMS if key in line and keras_ms / line[key] >= KERAS_GOAL]
            out.append("| %d | %.4g | %s | %s |" % (batch, keras_ms, " | ".join(cells),
                                                    "met from " + ", ".join(met) if met else verdict(False)))
    if LARGE_BATCH in batches:
        line = batches[LARGE_BATCH]
        out += ["", "Batch %d, numpy in to numpy out, against the goal of %g ms: %s." % (
            LARGE_BATCH, LARGE_GOAL_MS, "; ".join(
                "from %s %.4g ms (%s; GPU time %.4g ms)" % (label, line[key], verdict(line[key] <= LARGE_GOAL_MS),
                                                            line["device" + key[len("median"):]])
                for label, key in INPUT_FORMS if key in line))]
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
