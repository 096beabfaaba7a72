"""docs/gpu-proof.md from what `benchmarks/gpu_proof/run.sh builds` and `bench` wrote (the files of proof.tar.gz).

    python3 benchmarks/gpu_proof/report.py PROOF_DIR [--baseline EARLIER_PROOF_DIR] ["NOTE"] > docs/gpu-proof.md

--baseline puts an earlier run's figures (the files of an earlier proof.tar.gz) beside this run's:
the errors and the engine's latencies, row by row, as measured on that run's GPU.

Every figure comes from trtkit's own --json output and manifests; nothing is typed in by hand.
"""
import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))   # trtkit's in-container steps
from trtkit_steps.trt.polygraphy_api import kernel_precision  # noqa: E402

BUILDS = ["origin-default", "origin-fp32", "origin-fp16", "origin-fp16-again", "origin-fp16-replayed",
          "origin-fp16-strict", "cnn-fp32", "cnn-fp16", "cnn-int8"]
HOW_IT_RAN = (
    "Two stages, as engines are built in practice. `run.sh export`, on a CPU host in the stand-in image "
    "(TensorFlow, tf2onnx, ONNX Runtime): Keras -> verified ONNX plus the Keras reference, with Keras and ONNX "
    "Runtime timed there. `run.sh builds` and `run.sh bench`, on the GPU host: every engine is built by "
    "`trtkit build OUTPUT_FOLDER --gpus all` in `trtkit/tensorrt:8.6-py3` (no TensorFlow in it) through "
    "Polygraphy, and verified against the Keras outputs the export stored. The Docker engine is real "
    "(dockerd 20.10); the GPU reaches containers through `DeviceRequest`, served by this environment's stand-in "
    "for the NVIDIA Container Toolkit (`../shared/gpu/docker`); the image was built there by "
    "`images/build-tensorrt.sh` from the TensorRT 8.6.0 wheel's files and the CUDA runtime wheel "
    "(`benchmarks/gpu_proof/machine.sh` says why). Its cuBLAS/cuDNN are stubs, so builds ran with "
    "`--disable-tactic-sources CUBLAS,CUBLAS_LT,CUDNN`. `run.sh baseline` then ran the same builds and benches "
    "with trtkit as it was before Polygraphy (its own TensorRT Python API code), on the same machine.")
CHECKS = {"check-origin-fp16": "the origin FP16 engine, as built",
          "check-other-gpu": "the same engine, its manifest edited to say it was built on an A100",
          "check-damaged": "the same engine, its plan cut to 100000 bytes"}
BENCHES = ["bench-origin-fp32", "bench-origin-fp16", "bench-cnn-int8"]


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows] + [""]


def cell(text):
    """text in one markdown table cell (trtkit's one-line errors may quote `|`)."""
    return text.replace("|", "\\|")


def number(value, digits=3):
    return "" if value is None else (f"{value:.2e}" if abs(value) < 1e-2 and value else f"{value:.{digits}g}")


def exits(proof):
    return dict(re.findall(r"^=== (\S+): exit (\d+)$", (proof / "proof.log").read_text(), re.M))


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_lines(path):
    """The JSON lines of a benchmark script's stdout (other lines skipped); none when the file is absent."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")] if path.exists() else []


def engine_verification(manifest):
    return next((v for v in manifest.get("verification") or [] if v.get("artifact") == "model.plan"), {})


def build_rows(proof, codes):
    rows = []
    for name in BUILDS:
        m = load(proof / f"{name}.json") or {}
        engine = m.get("engine") or {}
        verified = engine_verification(m)
        target = m.get("target") or {}
        rows.append([name, codes.get(name, "not run"), target.get("chosen"), engine.get("builder"),
                     engine.get("precision"), number(verified.get("max_abs_err")), number(verified.get("atol")),
                     verified.get("passed"), number(engine.get("build_seconds")), engine.get("engine_bytes"),
                     engine.get("timing_cache_hit"), number(m.get("total_seconds"))])
    return rows


def artifact_sha256(manifest, name):
    return next((a.get("sha256") for a in manifest.get("artifacts") or [] if a.get("name") == name), None)


def last_error(proof, name):
    log = proof / f"{name}.log"
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")] if log.exists() else []
    return errors[-1] if errors else ""


def replay_lines(proof, codes):
    """Did the replay of origin-fp16's timing cache load exactly that file, and what came of it, strict or not?"""
    first, replayed = load(proof / "origin-fp16.json") or {}, load(proof / "origin-fp16-replayed.json") or {}
    engine = replayed.get("engine") or {}
    pinned = artifact_sha256(first, "timing.cache")
    same_plan = artifact_sha256(first, "model.plan") == artifact_sha256(replayed, "model.plan")
    return [
        "## Timing cache replayed (`--timing-cache origin-fp16/timing.cache`)", "",
        f"- origin-fp16-replayed: exit {codes.get('origin-fp16-replayed', 'not run')}",
        f"- sha256 of origin-fp16's `timing.cache` artifact: `{pinned}`",
        f"- sha256 of the cache the replay loaded: `{engine.get('timing_cache_loaded_sha256')}` "
        f"({'the same file' if pinned and pinned == engine.get('timing_cache_loaded_sha256') else 'different'})",
        f"- engine byte-identical to origin-fp16's: {same_plan} (TensorRT does not promise it)",
        f"- with `--strict-timing-cache` (origin-fp16-strict): exit {codes.get('origin-fp16-strict', 'not run')}, "
        f"`{last_error(proof, 'origin-fp16-strict')}`", "",
    ]


RUNTIMES = {"runtime-origin-fp32": "bench-origin-fp32", "runtime-origin-fp16": "bench-origin-fp16",
            "runtime-cnn-int8": "bench-cnn-int8"}


def runtime_lines(proof):
    """benchmarks/runtime_check.py's lines (trtkit.runtime), beside the same engine's end-to-end bench row."""
    lines = ["## trtkit.runtime (`run.sh runtime`: `benchmarks/runtime_check.py` in the same image)", "",
             "`Engine.predict`, numpy in and out, beside `trtkit bench`'s end-to-end row of the same engine in this "
             "run (pageable copies, no graphs). Differences are the largest absolute ones between the outputs.", ""]
    for name, bench in RUNTIMES.items():
        path = proof / f"{name}.jsonl"
        results = load_lines(path)
        e2e = {r["batch"]: r.get("median_ms") for r in (load(proof / f"{bench}.json") or {}).get("rows") or []
               if r["framework"] == "tensorrt" and r["mode"] == "end-to-end"}
        rows = [[r["batch"], r.get("runs_as", r.get("error")), number(r.get("max_abs_err_vs_keras")),
                 number(r.get("replay_vs_first")), number(r.get("threads_vs_first")),
                 number(r.get("graphs_off_vs_first")), number(r.get("median_ms")),
                 number(r.get("median_ms_graphs_off")), number(e2e.get(r["batch"])),
                 number(e2e[r["batch"]] / r["median_ms"]) if e2e.get(r["batch"]) and r.get("median_ms") else ""]
                for r in results if "batch" in r]
        lines += [f"### {name}", ""] + table(
            ["batch", "runs as", "max abs err vs Keras", "replay vs first", "4 threads vs first", "graphs off vs first",
             "median ms", "median ms, graphs off", "bench end-to-end ms", "bench / runtime"], rows)
    return lines


def gpu_name(proof):
    return (proof / "gpu.txt").read_text().split(",")[0].strip()


def baseline_lines(proof, baseline):
    """This run's errors and engine latencies beside a baseline run's; ratios only when both ran on one GPU model."""
    same_gpu = gpu_name(proof) == gpu_name(baseline)
    lines = [f"## Against the baseline (`{(baseline / 'version.txt').read_text().strip()}` on "
             f"{gpu_name(baseline)}; this run on {gpu_name(proof)})", "",
             "Errors against Keras per build, then the engine's median latency per batch"
             + ("." if same_gpu else ": different GPU models, so no ratio is taken."), ""]
    rows = []
    for name in BUILDS:
        now, before = load(proof / f"{name}.json") or {}, load(baseline / f"{name}.json")
        if before:
            rows.append([name, (before.get("engine") or {}).get("builder", "python-api"),
                         number(engine_verification(before).get("max_abs_err")),
                         (now.get("engine") or {}).get("builder"), number(engine_verification(now).get("max_abs_err"))])
    lines += table(["build", "builder (baseline)", "max abs err (baseline)", "builder", "max abs err"], rows)
    rows = []
    for name in BENCHES:
        now, before = load(proof / f"{name}.json") or {}, load(baseline / f"{name}.json") or {}
        earlier = {(r["batch"], r["mode"]): r for r in before.get("rows") or [] if r["framework"] == "tensorrt"}
        for r in now.get("rows") or []:
            old = earlier.get((r["batch"], r["mode"]))
            if r["framework"] == "tensorrt" and old and not r.get("error") and not old.get("error"):
                rows.append([name, r["batch"], r["mode"], number(old["median_ms"]), number(r["median_ms"])]
                            + ([number(r["median_ms"] / old["median_ms"])] if same_gpu else []))
    headers = ["bench", "batch", "mode", "median ms (baseline)", "median ms"] + (["ratio"] if same_gpu else [])
    return lines + table(headers, rows)


def bench_lines(proof, name):
    result = load(proof / f"{name}.json")
    if not result:
        return [f"`{name}`: no result (see its log in proof.tar.gz)", ""]
    headers = ["batch", "framework", "mode", "median ms", "p90 ms", "p99 ms", "max abs err vs Keras"]
    lines = [f"### {name}: {result['device']}", ""]
    lines += table(headers, [[r["batch"], r["framework"], r["mode"]] +
                             ([r["error"], "", "", ""] if r.get("error") else
                              [number(r["median_ms"]), number(r["p90_ms"]), number(r["p99_ms"]),
                               number(r.get("max_abs_err"))]) for r in result["rows"]])
    for absent in result.get("missing") or []:
        lines.append(f"- no {absent['framework']} rows here: {absent['reason']}")
    earlier = result.get("earlier")
    if earlier:
        lines += ["", f"Stored by the export build ({earlier['device']}; a different device, so no ratios "
                      "are taken across the two tables):", ""]
        lines += table(headers, [[r["batch"], r["framework"], r["mode"]] +
                                 ([r["error"], "", "", ""] if r.get("error") else
                                  [number(r["median_ms"]), number(r["p90_ms"]), number(r["p99_ms"]),
                                   number(r.get("max_abs_err"))]) for r in earlier["rows"]])
    return lines + [""]


def doctor_row(text, check):
    """One check's state from doctor's table, whose cells wrap over several lines."""
    state, inside = [], False
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) < 3:
            inside = False
            continue
        if cells[0] == check:
            inside = True
        elif cells[0]:
            inside = False
        if inside:
            state.append(cells[2])
    return " ".join(state)


def main(proof, baseline=None, export_note=""):
    codes = exits(proof)
    default = load(proof / "origin-default.json") or {}
    gpu_state = doctor_row((proof / "doctor.txt").read_text(), "GPU in a container")
    lines = [
        "# trtkit on a real GPU, through its command line",
        "",
        "Regenerated by `benchmarks/gpu_proof/report.py` from the output of `benchmarks/gpu_proof/run.sh`;",
        "every figure below is trtkit's own `--json` output or manifest. The raw files (logs, `--json` results,",
        "every manifest): [gpu-proof/proof.tar.gz](gpu-proof/proof.tar.gz) and",
        "[gpu-proof/proof.log](gpu-proof/proof.log). How to stage and run it on this project's GPU machine:",
        "[gpu-proof-staging.md](gpu-proof-staging.md).",
        "",
        f"- GPU, driver, memory: {(proof / 'gpu.txt').read_text().strip()}",
        f"- trtkit: {(proof / 'version.txt').read_text().strip()}",
        f"- image `trtkit/tensorrt:8.6-py3` (id, bytes): {(proof / 'image.txt').read_text().strip()}",
        f"- `trtkit doctor`, GPU in a container: {gpu_state}",
        f"- default target on this host: **{(default.get('target') or {}).get('chosen')}** "
        f"({(default.get('target') or {}).get('reason')})",
        "",
        "## How it ran",
        "",
        textwrap.fill(HOW_IT_RAN, 110),
        "",
        export_note,
        "",
        "## Builds (origin LSTM and CNN, verified against Keras)",
        "",
    ]
    lines += table(["build", "exit", "target", "builder", "precision", "max abs err", "atol", "passed",
                    "engine build s", "engine bytes", "timing cache hit", "total s"], build_rows(proof, codes))
    lines += ["int8 has no default tolerance (the error is reported, not gated), as in `--precision int8`.", ""]
    lines += replay_lines(proof, codes)
    lines += ["## Benchmarks (`trtkit bench OUT --gpus all`)", ""]
    for name in BENCHES:
        lines += bench_lines(proof, name)
    lines += ["## Before deployment (`trtkit check OUT --gpus all`)", ""]
    lines += table(["case", "exit", "answer"], [[case, codes.get(name, "not run"), check_answer(proof, name)]
                                                 for name, case in CHECKS.items()])
    for config in sorted(proof.glob("triton/*/config.pbtxt")):
        lines += [f"## Triton model `{config.parent.name}` (`--triton-repo`)", "", "```", config.read_text().strip(),
                  "```", ""]
    if any(proof.glob("runtime-*.jsonl")):
        lines += runtime_lines(proof)
    if baseline:
        lines += baseline_lines(proof, baseline)
    print("\n".join(lines))


def zoo_lines(proof):
    """run.sh zoo-builds: each zoo export as an FP32 and an FP16 engine, verified against Keras."""
    codes = exits(proof)
    names = sorted({m.group(1) for m in map(re.compile(r"^zoo-(.+)-fp(?:16|32)$").match, codes) if m})
    rows, verified, built = [], {"fp32": 0, "fp16": 0}, {"fp32": 0, "fp16": 0}
    for name in names:
        row = [name]
        for precision in ("fp32", "fp16"):
            build = f"zoo-{name}-{precision}"
            check = engine_verification(load(proof / f"{build}.json") or {})
            verified[precision] += bool(check.get("passed"))
            built[precision] += build in codes
            row += [number(check["max_abs_err"]), number(check["atol"])] if check else \
                [f"exit {codes[build]}: {cell(last_error(proof, build))}" if build in codes else "not built", ""]
        rows.append(row)
    counts = [f"{verified[p]} of {built[p]} {p.upper()} engines" for p in ("fp16", "fp32") if built[p]]
    return [f"**{' and '.join(counts)} verified** against Keras, on {gpu_name(proof)}.",
            ""] + table(["model", "FP32 max abs err", "atol", "FP16 max abs err", "atol"], rows)


def precision_lines(proof, batches=(1, 64, 1024)):
    """run.sh precision-builds and precision-runtime: each recipe's engine, its size and layers by precision (the
    types TensorRT chose: an FP16 engine is near half its FP32 size), its kernels by type (from layer_profile.py's
    listing), its device time (median of runtime_check's runs) and error against Keras per batch, or why it was
    not built."""
    codes = exits(proof)
    rows = []
    for build in (name for name in codes if re.match(r"^build-.+-(flags|rewrite|auto)$", name)):
        name = build[len("build-"):]
        path = proof / f"runtime-{name}.jsonl"
        measured = {r["batch"]: r for r in load_lines(path) if "batch" in r}
        cells = [f"{number(measured[b].get('device_ms'))}, {number(measured[b].get('max_abs_err_vs_keras'))}"
                 if b in measured else "" for b in batches]
        model, recipe = name.rsplit("-", 1)
        result = "exit 0" if codes[build] == "0" else f"**exit {codes[build]}**: {cell(last_error(proof, build))}"
        built = (load(proof / f"{build}.json") or {}).get("engine") or {}
        size, layers = built.get("engine_bytes"), built.get("layer_precisions") or {}
        listing = next((line["engine_layers"] for line in load_lines(proof / f"layers-{name}.jsonl")
                        if "engine_layers" in line), "")
        if recipe == "auto" and built.get("recipe"):
            recipe = f"auto: {built['recipe']}"     # the recipe whose engine it kept (the rewrite where flags missed)
        rows.append([model, recipe, result, number(size / 1e6) if size else "", counted(layers),
                     counted(kernel_types(listing)), *cells])
    return table(["model", "recipe", "build", "engine MB", "layers by precision", "kernels by type",
                  *(f"batch {b}: device ms, error" for b in batches)], rows)


def rewrite_types_lines(proof, batches=(1, 64, 1024)):
    """run.sh rewrite-types (benchmarks/rewrite_types.py): one FP16 rewrite built each way of asking TensorRT 8 for
    its types, side by side."""
    lines = []
    for path in sorted(proof.glob("rewrite-types-*.jsonl")):
        rows = []
        for row in load_lines(path)[1:]:
            asked = "/".join(str(row["asked"][key]) for key in ("fp16", "fp32", "unset"))
            times = ", ".join(number(row["device_ms"][str(b)]) for b in batches) if "device_ms" in row else ""
            rows.append([row["variant"], asked, number(row["build_s"]), number(row.get("engine_mb")) or "no engine",
                         counted(kernel_types(row.get("engine_layers", ""))), times, row["warnings"],
                         cell("; ".join(row["first_warnings"][:3]))])
        lines += [f"`{path.stem[len('rewrite-types-'):]}`:", ""] + table(
            ["variant", "layers asked fp16/fp32/unset", "build s", "engine MB", "kernels by type",
             f"device ms at batch {', '.join(map(str, batches))}", "TensorRT warnings", "first warnings"], rows)
    return lines


def counted(counts):
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))


def kernel_types(listing):
    """{precision: layers} of TensorRT's one-line inspector listing, by each kernel's name (TacticName: present
    where a dynamic-shape engine's listing has no types), as trtkit's census reads them; "other" for kernels whose
    names carry no type (pooling, softmax)."""
    counts = {}
    for name in re.findall(r"TacticName: ([^,\n]*)", listing):
        kind = kernel_precision(name) or "other"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def zoo_bench_lines(proof):
    """run.sh zoo-bench: trtkit bench of zoo FP16 engines beside Keras 3 (torch backend) on the same GPU, each
    figure with the device it ran on; models without Keras rows (ZOO_LOOP_PAIR) show the engine alone."""
    rows = []
    for path in sorted(proof.glob("zoo-bench-*.json")):
        model = path.stem[len("zoo-bench-"):]
        result = load(path)
        if not result:
            rows.append([model, "", f"no result: {cell(last_error(proof, path.stem))}"] + [""] * 5)
            continue
        keras = keras_rows(proof / f"keras3-{model}.jsonl")
        measured = {(r["batch"], r["framework"], r["mode"]): r["median_ms"] for r in result["rows"]
                    if not r.get("error")}
        for batch in sorted({batch for batch, _, _ in measured}):
            engine = measured.get((batch, "trtkit-runtime", "end-to-end"))
            theirs = keras["rows"].get(batch, {})
            call = theirs.get("keras-call", {}).get("end_to_end_ms")
            rows.append([model, batch, cell(result["device"]), number(measured.get((batch, "tensorrt", "on-device"))),
                         number(engine), cell(keras["device"]) if theirs else "",
                         number(theirs.get("keras-predict", {}).get("end_to_end_ms")), number(call),
                         number(call / engine) if call and engine else ""])
    return table(["model", "batch", "trtkit bench device", "tensorrt on-device ms", "trtkit.runtime end-to-end ms",
                  "Keras 3 device", "keras-predict ms", "keras-call ms", "keras-call / trtkit.runtime"], rows)


def keras_rows(path):
    """benchmarks/frameworks.py's JSON lines: the device of its header and its rows by batch."""
    lines = load_lines(path)
    header = next((line for line in lines if "gpu" in line), {})
    device = f"gpu: {header['gpu']} (Keras {header['keras']}, {header['keras_backend']})" if header else ""
    return {"device": device, "rows": {line["batch"]: line for line in lines if "batch" in line}}


def check_answer(proof, name):
    """The verdict of a check that passed, else its one-line error."""
    result = load(proof / f"{name}.json")
    return result["verdict"] if result else last_error(proof, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("proof", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--zoo", action="store_true", help="only the table of run.sh zoo-builds")
    parser.add_argument("--precision", action="store_true", help="only the table of run.sh precision-builds")
    parser.add_argument("--zoo-bench", action="store_true", help="only the table of run.sh zoo-bench")
    parser.add_argument("--rewrite-types", action="store_true", help="only the tables of run.sh rewrite-types")
    parser.add_argument("note", nargs="*")
    args = parser.parse_intermixed_args()
    if args.zoo:
        print("\n".join(zoo_lines(args.proof)))
    elif args.zoo_bench:
        print("\n".join(zoo_bench_lines(args.proof)))
    elif args.rewrite_types:
        print("\n".join(rewrite_types_lines(args.proof)))
    elif args.precision:
        print("\n".join(precision_lines(args.proof)))
    else:
        main(args.proof, args.baseline, " ".join(args.note))
