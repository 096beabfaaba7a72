"""Pure logic of the host side: option parsing, target choice, error mapping, events, staging."""
import errno
import inspect
import json
import os
import subprocess
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from trtkit import console, toolchain
from trtkit.cli import app
from trtkit.commands.build import build, plan_of
from trtkit.docker_runner import _lines, classify_pull_error, device_requests
from trtkit.errors import (
    ALL_ERRORS,
    GpuUnavailable,
    ImageNotFound,
    InvalidModel,
    ModelNotFound,
    OutputNotWritable,
    RegistryUnavailable,
    TargetUnsupported,
)
from trtkit.events import BuildRecord, EventStream
from trtkit.exported import manifest_field
from trtkit.lock import pinned_reference
from trtkit.modelfile import HDF5_SIGNATURE, ModelRef, resolve_model
from trtkit.options import (
    image_reference,
    parse_batch_set,
    parse_gpus,
    parse_shapes,
    parse_size,
    parse_tactic_sources,
)
from trtkit.plan import BuildPlan, GpuRequest
from trtkit.staging import Staging
from trtkit.targets import choose_target, unused_options

TRT_STACK = {"tensorrt": "8.6.0", "tensorflow": "2.21.0", "tftrt": False}
CPU_STACK = {"tensorrt": None, "trtexec": None, "tensorflow": "2.21.0", "tftrt": False}


def test_exit_codes_are_distinct():
    codes = [e.exit_code for e in ALL_ERRORS]
    assert len(codes) == len(set(codes)) and 1 not in codes and 2 not in codes


def test_parse_shapes_accepts_batches_and_full_shapes():
    assert parse_shapes(["lstm_1_input:1/1024/100000"]) == {"lstm_1_input": [1, 1024, 100000]}
    assert parse_shapes(["a:1x3x8/4x3x8/16x3x8"]) == {"a": [[1, 3, 8], [4, 3, 8], [16, 3, 8]]}
    assert parse_shapes(["scope/in:0:1/2/3"]) == {"scope/in:0": [1, 2, 3]}


@pytest.mark.parametrize("bad", ["x", "x:1/2", "x:4/2/8", "x:0/1/2", "x:a/b/c", ":1/2/3"])
def test_parse_shapes_rejects(bad):
    with pytest.raises(typer.BadParameter):
        parse_shapes([bad])


@pytest.mark.parametrize("specs, message", [
    (["a:1/2/3", "b:1/2/3", "a:4/5/6"], "--shapes gives input 'a' twice"),
    (["a:1x11/2x11x192/3x11x192"], "input 'a' must all be batch sizes or all full shapes of the same rank"),
    (["a:1x11/2x11x192/3"], "input 'a' must all be batch sizes or all full shapes of the same rank"),
    (["a:1/2x11/3x11"], "input 'a' must all be batch sizes or all full shapes of the same rank"),
])
def test_parse_shapes_refuses_repeats_and_mixed_ranks(specs, message):
    with pytest.raises(typer.BadParameter, match=message):
        parse_shapes(specs)


def test_parse_gpus_and_size():
    assert parse_gpus("ALL") == GpuRequest("all")
    assert parse_gpus("0, 1") == GpuRequest("ids", ("0", "1"))
    with pytest.raises(typer.BadParameter):
        parse_gpus("first")
    assert parse_size("2G", "size", 1 << 20, 1 << 40) == 2 << 30
    assert parse_size("512MiB", "size", 1, 1 << 40) == 512 << 20
    with pytest.raises(typer.BadParameter):
        parse_size("lots", "size", 1, 1 << 40)
    for too_small in ("0", "1", "1023K"):     # under the 1 MiB the message names as the smallest
        with pytest.raises(typer.BadParameter, match=r"out of range \(1 MiB to 1024 GiB\)"):
            parse_size(too_small, "size", 1 << 20, 1 << 40)


def test_device_requests_follow_the_runtime():
    assert device_requests(GpuRequest("auto"), available=False) == []
    assert device_requests(GpuRequest("none"), available=True) == []
    [request] = device_requests(GpuRequest("all"), available=False)   # asked for: let the engine say no
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    [request] = device_requests(GpuRequest("ids", ("1",)), available=True)
    assert request["DeviceIDs"] == ["1"]


def test_image_reference_validates_the_tag():
    assert image_reference("nvcr.io/nvidia/tensorrt", "19.07-py3") == "nvcr.io/nvidia/tensorrt:19.07-py3"
    with pytest.raises(typer.BadParameter):
        image_reference("x", "bad tag")


def test_default_target_is_engine_only_with_gpu_and_tensorrt():
    assert choose_target(None, GpuRequest("auto"), True, TRT_STACK).target == "engine"
    assert choose_target(None, GpuRequest("auto"), False, TRT_STACK).target == "onnx"
    assert "no NVIDIA runtime" in choose_target(None, GpuRequest("auto"), False, TRT_STACK).reason
    assert choose_target(None, GpuRequest("all"), True, CPU_STACK).reason == "default: the image has no TensorRT"
    trtexec_only = dict(CPU_STACK, trtexec={"path": "/usr/src/tensorrt/bin/trtexec", "version": "10.8.0"})
    assert choose_target(None, GpuRequest("all"), True, trtexec_only).target == "engine"
    old = choose_target(None, GpuRequest("all"), True, dict(TRT_STACK, tensorrt="5.1.5"))
    assert old.target == "onnx" and "TensorRT 5.1.5 is older than 8.0" in old.reason


def test_requested_targets_are_checked_against_the_stack():
    with pytest.raises(TargetUnsupported, match="no TF-TRT.*nvcr.io/nvidia/tensorflow"):
        choose_target("tftrt", GpuRequest("all"), True, TRT_STACK)
    with pytest.raises(TargetUnsupported, match="no TensorRT"):
        choose_target("engine", GpuRequest("all"), True, CPU_STACK)
    with pytest.raises(GpuUnavailable):
        choose_target("engine", GpuRequest("none"), True, TRT_STACK)
    assert choose_target("frozen", GpuRequest("none"), False, CPU_STACK).target == "frozen"


def test_options_that_shape_only_tensorrt_builds_are_named_for_other_targets(tmp_path):
    plan = BuildPlan(model=ModelRef(tmp_path / "m.h5", "h5"), image="i:t", settings={
        "precision": "int8", "calib_data": tmp_path / "c.npz", "exact_batches": [1, 64], "io_precision": "fp16"})
    assert unused_options(plan, "engine") == []
    assert unused_options(plan, "tftrt") == ["--io-precision", "--exact-batches"]
    assert unused_options(plan, "onnx") == ["--io-precision", "--exact-batches"]
    assert unused_options(plan, "frozen") == ["--precision", "--io-precision", "--calib-data", "--exact-batches"]
    assert unused_options(BuildPlan(model=plan.model, image="i:t"), "onnx") == []


def test_exported_models_have_their_own_targets():
    second = choose_target(None, GpuRequest("all"), True, TRT_STACK, "trtkit-output")
    assert second.target == "engine" and "earlier trtkit output" in second.reason
    with pytest.raises(TargetUnsupported, match="needs the Keras model: from an earlier trtkit output"):
        choose_target("onnx", GpuRequest("all"), True, TRT_STACK, "trtkit-output")
    with pytest.raises(GpuUnavailable, match="--target engine needs a GPU"):
        choose_target(None, GpuRequest("none"), True, TRT_STACK, "trtkit-output")
    assert choose_target(None, GpuRequest("none"), False, CPU_STACK, "onnx").target == "onnx"
    with pytest.raises(TargetUnsupported, match="from an onnx file trtkit builds onnx or engine"):
        choose_target("frozen", GpuRequest("none"), False, CPU_STACK, "onnx")


@pytest.mark.parametrize("message, error, text", [
    ("unauthorized: authentication required", RegistryUnavailable, "docker login nvcr.io"),
    ("manifest for nvcr.io/nvidia/tensorrt:99.99-py3 not found: manifest unknown", ImageNotFound, "unknown tag"),
    ('Get "https://nvcr.io/v2/": dial tcp: lookup nvcr.io: no such host', RegistryUnavailable, "unreachable"),
])
def test_pull_errors_become_advice(message, error, text):
    result = classify_pull_error("nvcr.io/nvidia/tensorrt:99.99-py3", message)
    assert isinstance(result, error) and text in result.one_line()


def test_lines_reassembles_split_chunks():
    assert list(_lines([b"ab", b"c\nd", b"e\n", b"tail"], 100)) == ["abc", "de", "tail"]


def test_lines_cuts_a_huge_line_and_drops_its_rest():
    chunks = [b"x" * 60, b"x" * 60, b"x" * 60 + b"\nnext\n"]
    assert list(_lines(chunks, 100)) == ["x" * 100 + " [line cut]", "next"]


def test_event_stream_builds_the_record():
    record = BuildRecord()
    stream = EventStream(record)
    for line in ['::trtkit::{"event": "versions", "tensorflow": "2.21.0", "keras": null}',
                 '::trtkit::{"event": "step_end", "step": "inspect", "seconds": 0.5, "ok": true}',
                 "plain [log] line",
                 '::trtkit::{"event": "error", "kind": "StepError", "message": "boom", "details": {}}']:
        stream(line)
    assert record.versions == {"tensorflow": "2.21.0"}
    assert record.steps == [{"step": "inspect", "seconds": 0.5, "ok": True}]
    assert record.error["message"] == "boom" and list(record.log_tail) == ["plain [log] line"]


def test_resolve_model_kinds(tmp_path):
    h5 = tmp_path / "m.h5"
    h5.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    assert resolve_model(h5).format == "h5"
    keras_file = tmp_path / "m.keras"
    with zipfile.ZipFile(keras_file, "w") as z:
        z.writestr("config.json", json.dumps({}))
    assert resolve_model(keras_file).format == "keras"
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"x")
    assert resolve_model(saved).format == "savedmodel"
    with pytest.raises(ModelNotFound):
        resolve_model(tmp_path / "missing.h5")
    hdf5_named_keras = tmp_path / "h5.keras"
    hdf5_named_keras.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    with pytest.raises(InvalidModel):
        resolve_model(hdf5_named_keras)


def test_staging_publishes_by_rename_and_cleans_up(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "trtkit.json").write_text(json.dumps({"artifacts": [{"name": "model.onnx"}]}))
    (out / "model.onnx").write_text("previous build")
    with Staging(out, force=False, protected={}) as staging:
        (staging.result / "model.onnx").write_text("new")
        staging.publish()
    assert [p.name for p in out.iterdir()] == ["model.onnx"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with Staging(tmp_path / "failed", force=False, protected={}):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(OutputNotWritable):
        Staging(tmp_path / "out" / "model.onnx" / "x", force=False, protected={})


def test_a_publish_that_fails_halfway_puts_the_earlier_output_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "trtkit.json").write_text(json.dumps({"artifacts": [{"name": "model.onnx"}]}))
    (out / "model.onnx").write_text("previous build")
    real_rename = os.rename

    def second_rename_fails(source, target):
        if Path(source).name == "result":
            raise OSError(errno.EXDEV, "simulated")
        real_rename(source, target)

    with Staging(out, force=False, protected={}) as staging:
        monkeypatch.setattr(os, "rename", second_rename_fails)
        with pytest.raises(OutputNotWritable):
            staging.publish()
        monkeypatch.setattr(os, "rename", real_rename)
    assert (out / "model.onnx").read_text() == "previous build"


def test_a_failed_build_removes_the_folders_above_out_it_made_while_they_are_empty(tmp_path):
    with Staging(tmp_path / "deep" / "a" / "out", force=False, protected={}):
        pass                                                   # never published: the build failed
    assert not (tmp_path / "deep").exists()
    with Staging(tmp_path / "deep" / "b" / "out", force=False, protected={}):
        (tmp_path / "deep" / "b" / "notes.txt").write_text("written meanwhile")
    assert [p.name for p in (tmp_path / "deep" / "b").iterdir()] == ["notes.txt"]
    with Staging(tmp_path / "made" / "out", force=False, protected={}) as staging:
        staging.publish()
    assert (tmp_path / "made" / "out").is_dir()


@pytest.mark.parametrize("text, reference", [
    ("nvcr.io/nvidia/tensorrt:24.05-py3", "nvcr.io/nvidia/tensorrt:24.05-py3"),
    ("localhost:5000/trt:8.6-py3", "localhost:5000/trt:8.6-py3"),
    ("trtkit/standin@sha256:" + "a" * 64, "trtkit/standin@sha256:" + "a" * 64)])
def test_a_whole_image_reference_is_checked_like_image_and_tag(text, reference):
    from trtkit.options import whole_reference
    assert whole_reference(text) == reference


@pytest.mark.parametrize("text", ["trtkit/standin", "localhost:5000/trt", "bad ref!!:1", "repo@sha256:abc"])
def test_a_whole_image_reference_without_a_tag_or_malformed_is_a_usage_error(text):
    from trtkit.options import whole_reference
    with pytest.raises(typer.BadParameter):
        whole_reference(text)


def test_tactic_sources_to_leave_out():
    assert parse_tactic_sources("cublas, CUBLAS_LT,cudnn") == ["CUBLAS", "CUBLAS_LT", "CUDNN"]
    for bad in ("", ",", "-CUBLAS", "cu blas"):
        with pytest.raises(typer.BadParameter):
            parse_tactic_sources(bad)


def test_exact_batches_are_distinct_and_ascending():
    assert parse_batch_set("64,1, 64", "--exact-batches", 8) == [1, 64]
    for bad in (",", "0", "1,x", ",".join(map(str, range(1, 10)))):
        with pytest.raises(typer.BadParameter, match="--exact-batches"):
            parse_batch_set(bad, "--exact-batches", 8)


def test_reproduce_sh_of_an_engine_replays_its_own_timing_cache_checked_by_sha256(tmp_path):
    """The script itself, run with stand-ins for docker and trtkit that record what they were given."""
    from trtkit import reproduce
    from trtkit.docker_runner import Limits
    from trtkit.toolchain import Toolchain

    out, bin_dir = tmp_path / "out", tmp_path / "bin"
    out.mkdir(), bin_dir.mkdir()
    (out / "timing.cache").write_bytes(b"tactics")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.onnx", "onnx"), image="trtkit/tensorrt:8.6-py3", settings={
        "strict_timing_cache": True, "exact_batches": [1, 64], "io_precision": "fp16"})
    reproduce.write(out, plan, "engine", Toolchain("t", "sha256:t", {}, "sha256:base", []), Limits(1 << 30))
    (bin_dir / "docker").write_text("#!/bin/sh\necho sha256:base\n")
    (bin_dir / "trtkit").write_text(f"#!/bin/sh\n[ \"$1\" = --version ] || echo \"$@\" > {tmp_path}/args\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stderr
    args = (tmp_path / "args").read_text().split()
    assert args[args.index("--timing-cache") + 1] == str(out / "timing.cache") and "--strict-timing-cache" in args
    assert args[args.index("--exact-batches") + 1] == "1,64" and args[args.index("--io-precision") + 1] == "fp16"
    (out / "timing.cache").write_bytes(b"other tactics")
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert ran.returncode == 1 and "not the timing cache this build ended with" in ran.stderr


def test_reproduce_sh_checks_the_timing_cache_in_a_folder_whose_name_has_backslashes_quotes_and_dollars(tmp_path):
    """/bin/sh's echo (dash's) turns \\t in a path into a tab: the sha256 check must get the path as it is."""
    from trtkit import reproduce
    from trtkit.docker_runner import Limits
    from trtkit.toolchain import Toolchain

    out, bin_dir = tmp_path / "builds\\test 'a' \"$HOME\"" / "out", tmp_path / "bin"
    out.mkdir(parents=True), bin_dir.mkdir()
    (out / "timing.cache").write_bytes(b"tactics")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.onnx", "onnx"), image="trtkit/tensorrt:8.6-py3")
    reproduce.write(out, plan, "engine", Toolchain("t", "sha256:t", {}, "sha256:base", []), Limits(1 << 30))
    (bin_dir / "docker").write_text("#!/bin/sh\necho sha256:base\n")
    (bin_dir / "trtkit").write_text("#!/bin/sh\n[ \"$1\" = --version ] || for a; do printf '%s\\n' \"$a\"; done "
                                    f"> {tmp_path}/args\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert args[args.index("--timing-cache") + 1] == str(out / "timing.cache")


def test_the_cache_and_triton_copy_the_published_output_while_its_lock_is_held(tmp_path, monkeypatch):
    """Once the lock is released another build may replace --out (a reused one in milliseconds): a copy made after
    that would keep its files under this build's key, or serve them with this build's Triton config."""
    from trtkit import build_cache, session, triton
    from trtkit.docker_runner import Limits
    from trtkit.toolchain import Toolchain

    monkeypatch.setenv("TRTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.h5").write_bytes(HDF5_SIGNATURE)
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="i:t", target="onnx", out_dir=tmp_path / "out",
                     triton_repo=tmp_path / "repo")
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    monkeypatch.setattr(session, "open_session", lambda plan: session.Session(None, toolchain, False, Limits(1 << 30)))
    monkeypatch.setattr(session, "_build_fresh", lambda *args: {"target": {"chosen": "onnx"}})
    lock, copies = tmp_path / ".out.trtkit.lock", []
    monkeypatch.setattr(build_cache, "keep", lambda output, key: copies.append(("cache", lock.exists())))
    monkeypatch.setattr(triton, "write", lambda folder, out, manifest, force: copies.append(("triton", lock.exists())))
    session.build(plan)
    assert copies == [("cache", True), ("triton", True)] and not lock.exists()


def test_a_change_to_a_step_script_is_a_new_build_key(tmp_path, monkeypatch):
    """Finished builds are reused by key; a tree whose in-container steps changed under one version must not
    reuse a build its old steps made."""
    import shutil

    from trtkit import build_cache, resources
    from trtkit.modelfile import ModelRef
    from trtkit.plan import BuildPlan
    from trtkit.toolchain import Toolchain

    steps = tmp_path / "scripts"
    shutil.copytree(resources.scripts_dir(), steps)
    (tmp_path / "model.h5").write_bytes(b"h5")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="trtkit/standin:19.07-py3")
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    uncached = resources.steps_digest.__wrapped__
    monkeypatch.setattr(resources, "steps_digest", lambda: uncached(steps))
    first = build_cache.key(plan, "onnx", toolchain)
    assert build_cache.key(plan, "onnx", toolchain) == first
    script = steps / "trtkit_steps" / "onnx_lstm.py"
    script.write_text(script.read_text() + "\n# another step\n")
    assert build_cache.key(plan, "onnx", toolchain) != first


def test_options_only_tensorrt_reads_leave_an_onnx_or_frozen_builds_key_alone(tmp_path):
    """A project's matrix crosses targets with precisions and TensorRT settings: the settings only engines read leave
    an onnx or frozen build as it is, so their cells are one finished build, reused. --precision fp16 writes
    model.fp16.onnx into an onnx build (not a frozen one), so it enters that key."""
    import dataclasses

    from trtkit import build_cache
    from trtkit.toolchain import Toolchain

    for name in ("model.h5", "calib.npz", "timing.cache"):
        (tmp_path / name).write_bytes(name.encode())
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="trtkit/standin:19.07-py3")
    tensorrt = dataclasses.replace(plan, settings={
        "tf32": True, "workspace": 1 << 30, "timing_cache": tmp_path / "timing.cache", "strict_timing_cache": True,
        "typical_batch": 64, "exact_batches": [1, 64], "optimization_level": 5, "io_precision": "fp16",
        "disabled_tactic_sources": ["CUBLAS"], "precision_recipe": "flags"})
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    half = dataclasses.replace(plan, settings={"precision": "fp16", "calib_data": tmp_path / "calib.npz"})
    assert build_cache.key(half, "onnx", toolchain) != build_cache.key(plan, "onnx", toolchain)
    assert build_cache.key(half, "frozen", toolchain) == build_cache.key(plan, "frozen", toolchain)
    for target in build_cache.REUSABLE_TARGETS:
        assert len(unused_options(tensorrt, target)) == 10        # every one of them is unused by this target
        assert build_cache.key(tensorrt, target, toolchain) == build_cache.key(plan, target, toolchain)
        assert build_cache.key(dataclasses.replace(plan, settings={"seed": 1}), target, toolchain) != \
            build_cache.key(plan, target, toolchain)


def test_a_reused_build_records_the_model_and_image_this_build_was_asked_for(tmp_path):
    """The key holds the model's bytes and the image's id, not their names: a copy of the model elsewhere, or the
    same image by digest, reuses the build. Its manifest then names this build's model path (which `trtkit bench
    OUT` loads, and reproduce.sh builds) and image reference, not the finished build's."""
    from typing import cast

    from trtkit import manifest
    from trtkit.manifest import Manifest
    from trtkit.targets import TargetChoice

    first, copy = tmp_path / "a" / "model.h5", tmp_path / "b" / "copy.h5"
    for path in (first, copy):
        path.parent.mkdir()
        path.write_bytes(b"h5")
    finished = {"created": "then", "model": {"path": str(first), "format": "h5", "sha256": "s", "params": 3},
                "image": {"reference": "repo:tag", "id": "sha256:base", "repo_digests": [], "toolchain": "t",
                          "toolchain_id": "sha256:t"}}
    pinned = "repo@sha256:" + "0" * 64
    plan = BuildPlan(model=ModelRef(copy, "h5"), image=pinned)
    made = manifest.reused(cast(Manifest, finished), plan, TargetChoice("onnx", "test"), tmp_path, 0.0)
    assert made["model"] == {"path": str(copy), "format": "h5", "sha256": "s", "params": 3}
    assert made["image"]["reference"] == pinned and made["image"]["id"] == "sha256:base"
    assert made["reused_from"] == "then" and finished["model"]["path"] == str(first)


def test_manifest_fields_are_read_defensively(tmp_path):
    path = tmp_path / "trtkit.json"
    manifest = {"image": {"reference": "repo:tag"}, "target": None, "artifacts": "model.onnx"}
    assert manifest_field(manifest, path, "image.reference") == "repo:tag"
    for field, kind in [("target.chosen", str), ("image.digest", str), ("artifacts", list), ("model.path", str)]:
        with pytest.raises(InvalidModel, match=f"{path} has no valid {field} ") as raised:
            manifest_field(manifest, path, field, kind)
        assert raised.value.exit_code == 11


def build_values(model, **given) -> dict:
    """The build command's parameters at their defaults, as plan_of receives them, with given ones changed."""
    defaults = {name: getattr(p.default, "value", p.default) for name, p in inspect.signature(build).parameters.items()
                if name != "ctx"}
    return {**defaults, "model": model, "tag": "24.05-py3", **given}


@pytest.mark.parametrize("given, message", [
    ({"batch": "abc"}, "a batch size must be a whole number"),
    ({"iterations": -5}, "iterations"),
    ({"warmup": -1}, "warmup"),
])
def test_bench_options_are_checked_without_bench(tmp_path, given, message):
    h5 = tmp_path / "m.h5"
    h5.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    assert plan_of(build_values(h5)).bench is None
    assert plan_of(build_values(h5, bench=True)).bench is not None
    for bench in (False, True):
        with pytest.raises(typer.BadParameter, match=message):
            plan_of(build_values(h5, bench=bench, **given))


@pytest.mark.parametrize("terminal, quiet, shown", [(True, False, True), (True, True, False), (False, False, False)])
def test_progress_bars_only_on_a_terminal_and_never_when_quiet(monkeypatch, terminal, quiet, shown):
    monkeypatch.setattr(console, "err", console.Console(stderr=True, force_terminal=terminal))
    try:
        console.set_verbosity(False, quiet)
        assert console.live_progress().disable is not shown
    finally:
        console.set_verbosity(False, False)


def test_a_locked_build_runs_the_digest_of_its_own_repository():
    """An image pushed to a mirror too has a digest there; the lock runs the reference's own, which CI can pull."""
    mirror, nvcr = "localhost:5000/trt@sha256:" + "a" * 64, "nvcr.io/nvidia/tensorrt@sha256:" + "b" * 64
    entry = {"digests": sorted([nvcr, mirror])}
    assert pinned_reference("nvcr.io/nvidia/tensorrt:24.05-py3", entry) == nvcr
    assert pinned_reference("localhost:5000/trt:24.05-py3", entry) == mirror
    assert pinned_reference("trtkit/other:1", entry) == "trtkit/other:1"     # no digest of its own: by its tag
    assert pinned_reference(nvcr.replace("b" * 64, "c" * 64), entry) == nvcr.replace("b" * 64, "c" * 64)


def test_a_wheelhouse_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(app, ["wheelhouse", "24.05-py3", "-o", str(tmp_path / "file" / "wheels")])
    assert result.exit_code == OutputNotWritable.exit_code, result.output
    assert "cannot make the wheelhouse folder" in result.output and result.exception.__class__ is SystemExit


def test_builds_started_together_derive_a_new_toolchain_once(tmp_path, monkeypatch):
    """A matrix's first builds on a new tag: one derives the toolchain (minutes, gigabytes), the others wait."""
    monkeypatch.setenv("TRTKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(toolchain, "probe", lambda runner, image_id, limits: {})
    tagged: dict = {}
    derived: list[str] = []

    def build_image(context, tag, buildargs, labels, on_line):
        derived.append(tag)
        time.sleep(0.5)
        tagged[tag] = SimpleNamespace(id="sha256:toolchain")
        return tagged[tag]

    runner = SimpleNamespace(image=lambda reference: SimpleNamespace(id="sha256:" + "1" * 64, attrs={}),
                             build_image=build_image,
                             client=SimpleNamespace(images=SimpleNamespace(list=lambda name: list(
                                 filter(None, [tagged.get(name)])))))
    results: list = []
    started = [threading.Thread(target=lambda: results.append(toolchain.ensure_toolchain(runner, "i:t", None, print)))
               for _ in range(3)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    assert len(derived) == 1 and sorted(t.derived for t in results) == [False, False, True]


@pytest.mark.parametrize("command", [["images", "save", "nvcr.io/nvidia/tensorrt", "-o", "x.tar"],
                                     ["images", "derive", "nvcr.io/nvidia/tensorrt"]])
def test_an_image_without_a_tag_is_a_usage_error_before_the_daemon(monkeypatch, command):
    """Not exit 12 when the daemon is down: the reference is wrong either way."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and "names no tag" in result.output, result.output
