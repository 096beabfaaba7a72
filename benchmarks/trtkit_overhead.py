"""Benchmarks of trtkit itself, as ratios measured in one run; results to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/trtkit_overhead.py [--repeat 3] [--batches 1,64,1024,100000]

Needs dockerd and the stand-in image (`make setup`). Measures:
1. overhead: a warm `trtkit build` against the same in-container work run by hand with
   `docker run` (the origin post's manual workflow, minus the guessing);
2. reuse: the first build on a new base image (derives the toolchain: python_setup.sh,
   installs, probe) against the second build on it;
3. speed: Keras (predict and direct call) and ONNX Runtime on the origin model, through
   `trtkit bench` (CPU; the GPU engine figures are in docs/gpu-proof.md).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
from fresh_base import make_fresh_base, remove_fresh_base

from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan

REPO = Path(__file__).resolve().parents[1]
STANDIN = "trtkit/standin:19.07-py3"
RESULTS = REPO / "benchmarks" / "RESULTS.md"


def trtkit(*args, cwd):
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "trtkit", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"trtkit {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - t0, result.stdout


def by_hand(client, toolchain, model, work):
    """What a user would run without trtkit: one docker run of the same scripts on the same plan."""
    (work / "artifacts").mkdir(parents=True, exist_ok=True)
    plan = BuildPlan(model=ModelRef(model, "h5"), image=toolchain).container_plan("onnx")
    (work / "plan.json").write_text(json.dumps(plan))
    t0 = time.perf_counter()
    client.containers.run(toolchain, ["python3", "/trtkit/scripts/pipeline.py", "/trtkit/work/plan.json"], remove=True,
                          environment={"HOME": "/tmp", "TF_CPP_MIN_LOG_LEVEL": "2"}, network_mode="none",
                          volumes={str(REPO / "scripts"): {"bind": "/trtkit/scripts", "mode": "ro"},
                                   str(model.parent): {"bind": "/trtkit/model", "mode": "ro"},
                                   str(work): {"bind": "/trtkit/work", "mode": "rw"}})
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batches", default="1,64,1024,100000")
    args = parser.parse_args()
    client = docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="trtkit-bench-"))
    os.environ["TRTKIT_CACHE"] = str(tmp / "cache")
    subprocess.run(["docker", "run", "--rm", "-e", "HOME=/tmp", "-v", f"{REPO}:/repo:ro", "-v", f"{tmp}:/out",
                    STANDIN, "python3", "/repo/examples/make_models.py", "/out", "origin_lstm.h5"], check=True,
                   capture_output=True)
    model = tmp / "origin_lstm.h5"
    common = ["--image", "trtkit/standin", "--tag", "19.07-py3", "--gpus", "none", "--target", "onnx", "--force"]

    # 2. reuse: first build on a new base image, then the second.
    repository, tag = make_fresh_base(client, STANDIN, "trtkit-bench/standin")
    try:
        reuse_args = ["build", model, "--image", repository, "--tag", tag, "--gpus", "none", "--target", "onnx",
                      "--force"]    # built again, not taken from the build cache
        first, _ = trtkit(*reuse_args, "--out", tmp / "first", cwd=tmp)
        second, _ = trtkit(*reuse_args, "--out", tmp / "second", cwd=tmp)
    finally:
        remove_fresh_base(client, repository, tag)

    # 1. overhead: warm trtkit build against the same work by hand, alternating.
    _, out = trtkit("build", model, *common, "--out", tmp / "warmup", "--json", cwd=tmp)
    toolchain = json.loads(out)["image"]["toolchain"]
    warm, manual = [], []
    for i in range(args.repeat):
        warm.append(trtkit("build", model, *common, "--out", tmp / f"warm{i}", cwd=tmp)[0])
        manual.append(by_hand(client, toolchain, model, tmp / f"hand{i}"))

    # 3. speed: trtkit bench on the warm build's output.
    _, bench_json = trtkit("bench", tmp / "warm0", "--image", "trtkit/standin", "--tag", "19.07-py3", "--gpus", "none",
                           "--batch", args.batches, "--json", cwd=tmp)
    write_results(first, second, warm, manual, json.loads(bench_json), args)


def write_results(first, second, warm, manual, bench, args):
    med_warm, med_manual = statistics.median(warm), statistics.median(manual)
    lines = [
        "# Benchmarks of trtkit itself",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on this project's development machine ({platform.machine()}, "
        f"{os.cpu_count()} cores, no GPU, Docker {docker.from_env().version()['Version']}) with",
        "",
        "    .venv/bin/python benchmarks/trtkit_overhead.py "
        f"--repeat {args.repeat} --batches {args.batches}",
        "",
        "All figures come from one run. Every build is of the origin model (`origin_lstm.h5`) to `--target onnx`",
        "in the stand-in image `trtkit/standin:19.07-py3`. They are CPU figures; the GPU engine figures",
        "(H200, real TensorRT 8.6) are in [docs/gpu-proof.md](../docs/gpu-proof.md).",
        "",
        "## trtkit's overhead on a warm build",
        "",
        "| run | median s | runs |",
        "|---|---|---|",
        f"| `trtkit build` (toolchain present) | {med_warm:.2f} | {', '.join(f'{t:.2f}' for t in warm)} |",
        f"| the same in-container work by hand, one `docker run` | {med_manual:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in manual)} |",
        "",
        f"**Ratio: {med_warm / med_manual:.2f}×.** trtkit adds {med_warm - med_manual:.2f} s a build. That time goes",
        "to the CLI's start, connecting to the engine, finding the toolchain image, checking the cached probe,",
        "copying the scripts and the model in and the artifacts out through the Docker API (nothing is mounted),",
        "hashing the model and artifacts, and writing the manifest and reports.",
        "",
        "## The toolchain image is reused",
        "",
        "| build | s |",
        "|---|---|",
        f"| first on a new base image (derives the toolchain: python_setup.sh, installs, probe) | {first:.2f} |",
        f"| second on the same base image | {second:.2f} |",
        "",
        f"**Ratio: {first / second:.2f}×.** The second build runs no setup; `tests/test_toolchain.py` asserts it.",
        "",
        f"## ONNX Runtime against Keras, origin model ({bench['device']})",
        "",
        "Median ms of `trtkit bench` (each framework in its own process). The error is against Keras `model(x)`.",
        "",
        "| batch | framework | median ms | p90 ms | × Keras predict | max abs error |",
        "|---|---|---|---|---|---|",
    ]
    for row in bench["rows"]:
        if row.get("error"):
            lines.append(f"| {row['batch']} | {row['framework']} | {row['error']} | | | |")
            continue
        speedup = row.get("speedup_vs_predict")
        lines.append(f"| {row['batch']} | {row['framework']} | {row['median_ms']:.3f} | {row['p90_ms']:.3f} | "
                     f"{speedup:.1f} | {row['max_abs_err']:.1e} |" if speedup else
                     f"| {row['batch']} | {row['framework']} | {row['median_ms']:.3f} | {row['p90_ms']:.3f} | | "
                     f"{row['max_abs_err']:.1e} |")
    for skipped in bench.get("skipped", []):
        lines.append(f"| {skipped['batch']} | skipped: {skipped['reason']} | | | | |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
