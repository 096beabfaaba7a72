"""Issue 7, pure logic: what comes back from a container, events, --out rules, usage errors (no Docker)."""
import io
import json
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import docker.errors
import pytest
import requests

from trtkit import report, session, triton
from trtkit.console import plain
from trtkit.docker_runner import Archive, DockerRunner, Limits
from trtkit.errors import InvalidModel, OutOfMemory, OutputNotWritable, StepFailed, StepTimedOut, VerificationFailed
from trtkit.events import (
    MAX_EVENT_BYTES,
    MAX_EVENTS_OF_A_KIND,
    BuildRecord,
    EventStream,
    StepDeadlines,
    parse_event,
)
from trtkit.manifest import Manifest
from trtkit.modelfile import HDF5_SIGNATURE, ModelRef, safe_name
from trtkit.plan import BuildPlan
from trtkit.session import exit_error
from trtkit.staging import foreign_entries, refuse_protected, replace_folder
from trtkit.transfer import Inputs, artifact_rule, plain_files, receive
from trtkit_steps import contract

ALLOWED = contract.allowed_artifacts("tftrt", bench=False)


def tar_stream(*members, top="artifacts"):
    """A get_archive-like stream: (name, kind, payload/linkname) below `top`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(top)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, kind, payload in members:
            info = tarfile.TarInfo(f"{top}/{name}" if not name.startswith("/") else name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "device": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = payload or ""
            tar.addfile(info)
    data = buffer.getvalue()
    return iter([data[i:i + 1000] for i in range(0, len(data), 1000)])


def test_artifacts_are_taken_by_name_as_regular_files(tmp_path):
    taken = receive(tar_stream(("model.onnx", "file", b"onnx"), ("evil.sh", "file", b"rm -rf"),
                               ("../escape", "file", b"x"), ("/abs", "file", b"x"),
                               ("model.tftrt", "dir", None), ("model.tftrt/variables", "dir", None),
                               ("model.tftrt/variables/v.data", "file", b"v")),
                    tmp_path, artifact_rule(ALLOWED), 1 << 20, "artifacts")
    assert taken == ["model.onnx", "model.tftrt", "model.tftrt/variables", "model.tftrt/variables/v.data"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "model.onnx", "model.tftrt", "model.tftrt/variables", "model.tftrt/variables/v.data"]
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize("member, says", [
    (("model.onnx", "symlink", "/etc/passwd"), "model.onnx as a link to '/etc/passwd'"),
    (("model.onnx", "hardlink", "artifacts/other"), "model.onnx as a link to 'artifacts/other'"),
    (("model.pb", "device", None), "model.pb as a special file"),
    (("model.pb", "fifo", None), "model.pb as a special file"),
    (("model.onnx", "dir", None), "model.onnx as a folder, not a regular file"),
    (("model.tftrt/saved_model.pb", "symlink", "/root/.ssh/id_rsa"), "model.tftrt/saved_model.pb as a link"),
])
def test_artifacts_in_any_other_form_are_refused(tmp_path, member, says):
    with pytest.raises(StepFailed, match="refused") as caught:
        receive(tar_stream(member), tmp_path, artifact_rule(ALLOWED), 1 << 20, "artifacts")
    assert says in caught.value.message
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_a_name_twice_and_too_many_bytes_are_refused(tmp_path):
    with pytest.raises(StepFailed, match="model.onnx twice"):
        receive(tar_stream(("model.onnx", "file", b"a"), ("model.onnx", "file", b"b")), tmp_path,
                artifact_rule(ALLOWED), 1 << 20, "artifacts")
    with pytest.raises(StepFailed, match="more than 0 MiB of artifacts"):
        receive(tar_stream(("model.pb", "file", b"x" * 5000)), tmp_path / "x", artifact_rule(ALLOWED), 4096,
                "artifacts")


def test_evidence_and_cache_keep_only_named_small_regular_files(tmp_path):
    rule = plain_files(lambda name: name in contract.EVIDENCE_FILES, 10)
    taken = receive(tar_stream(("inputs.npz", "file", b"ok"), ("actual.npz", "symlink", "/"),
                               ("expected.npz", "file", b"x" * 11), ("evil.sh", "file", b"x"),
                               ("sub", "dir", None), ("sub/inputs.npz", "file", b"x"), top="evidence"),
                    tmp_path, rule, 1 << 20, "evidence")
    assert taken == ["inputs.npz"] and [p.name for p in tmp_path.iterdir()] == ["inputs.npz"]
    assert contract.CACHE_FILE.match("timing-8.6.0-NVIDIA_H100_80GB_HBM3-sm90.cache")
    assert contract.CACHE_FILE.match("calibration-" + "ab" * 16 + ".cache")
    assert not any(contract.CACHE_FILE.match(n) for n in ("../x.cache", "calibration-xyz.cache", "timing-a/b.cache"))


@pytest.mark.parametrize("line", [
    '::trtkit::{"event": "step_end", "step": "x"}',                       # missing fields
    '::trtkit::{"event": "step_end", "step": "x", "seconds": "1", "ok": true}',   # wrong type
    '::trtkit::{"event": "names", "inputs": [{"name": 1}], "outputs": []}',
    '::trtkit::{"event": "bench", "device": "cpu", "rows": [{"batch": 1}]}',
    '::trtkit::{"event": "no_such_event"}',
    '::trtkit::{"no": "event"}',
    '::trtkit::[1, 2]',
    '::trtkit::{not json',
    '::trtkit::' + '[' * 50000 + ']' * 50000,
    'plain text',
])
def test_malformed_or_unknown_events_are_log_text(line):
    assert parse_event(line) is None


def test_well_formed_events_parse():
    assert parse_event('::trtkit::{"event": "step_end", "step": "x", "seconds": 1, "ok": true}')["step"] == "x"
    assert parse_event('::trtkit::{"event": "done"}') == {"event": "done"}


def event_line(kind, **fields):
    return contract.EVENT_PREFIX + json.dumps({"event": kind, **fields})


IO = {"name": "x", "keras_tensor": "x:0", "frozen": "x", "imported": "import/x"}
PROFILE = {"min": [1, 4], "opt": [8, 4], "max": [64, 4]}
TIMINGS = {"batch": 1, "framework": "keras", "mode": "predict", "median_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0}
ENGINE = {"tensorrt": "8.6.1", "gpu": "H100", "compute_capability": "9.0", "profiles": {"x": PROFILE},
          "portability_note": "only here"}


@pytest.mark.parametrize("kind, fields", [     # each passed check_event once, then crashed the host
    ("bench", {"device": "cpu", "rows": [{"batch": 1, "framework": "keras", "mode": "predict"}]}),
    ("bench", {"device": "cpu", "rows": [dict(TIMINGS, median_ms=float("nan"))]}),
    ("bench", {"device": "cpu", "rows": [dict(TIMINGS, p99_ms=None)]}),
    ("bench", {"device": "cpu", "rows": [dict(TIMINGS, throughput_per_s="fast")]}),
    ("engine", {"portability_note": "hi"}),
    ("engine", dict(ENGINE, profiles={"x": dict(PROFILE, max=["64\ninput [ ]"])})),   # into config.pbtxt
    ("engine", dict(ENGINE, profiles={})),
    ("names", {"inputs": [dict(IO, dtype="float32")], "outputs": [], "params": 1}),              # no shape
    ("names", {"inputs": [dict(IO, dtype="float32", shape=["N", 4])], "outputs": [], "params": 1}),
    ("names", {"inputs": [], "outputs": [dict(IO, shape=[None, 2], dtype=7)], "params": 1}),
    ("names", {"inputs": [], "outputs": [], "params": "many"}),
    ("step_end", {"step": "x", "seconds": 10 ** 400, "ok": True}),      # no float holds it: f"{s:.2f}" fails
    ("verified", {"artifact": "a", "outputs": {}, "max_abs_err": 10 ** 400, "atol": None, "passed": True}),
    ("engine_check", {"tensorrt": "8", "gpu": "g", "compute_capability": "9.0", "loadable": False, "error": {}}),
])
def test_events_missing_what_the_host_reads_are_log_text(kind, fields):
    record = BuildRecord()
    EventStream(record)(event_line(kind, **fields))
    assert (record.bench, record.engine, record.names, record.steps, record.verification) == (None, None, None, [], [])
    error = exit_of(0, record)      # a build whose real event was replaced: one line, exit 17
    assert isinstance(error, StepFailed) and "no final event" in error.message


def test_the_least_an_event_can_carry_is_enough_for_every_reader(capsys):
    record = BuildRecord()
    stream = EventStream(record)
    for kind, fields in [
            ("names", {"inputs": [dict(IO, shape=[None, 4], dtype="float32")], "outputs": [IO], "params": 0}),
            ("step_end", {"step": "export", "seconds": 1, "ok": True}),
            ("verified", {"artifact": "model.onnx", "outputs": {}, "max_abs_err": float("nan"), "atol": None,
                          "passed": True}),     # NaN outputs: a finding, kept
            ("engine", ENGINE),
            ("bench", {"device": "cpu", "rows": [TIMINGS, {"batch": 1, "framework": "onnxruntime", "mode": "run",
                                                           "error": ""}]})]:
        stream(event_line(kind, **fields))
    assert report.names_section(record.names).rows[1][:2] == ["output", "x"]
    assert [row[4:6] for row in report.bench_section(record.bench).rows] == [[1.0, 1.0], ["", ""]]
    assert triton.max_batch(cast(Manifest, {"engine": record.engine, "options": {}})) == 64
    assert len(record.steps) == len(record.verification) == 1 and "nan" in capsys.readouterr().err


def test_the_events_of_real_builds_pass():
    """Manifests and `trtkit bench --json` output of real runs (docs/gpu-proof): the checks keep what steps emit."""
    repo = Path(__file__).resolve().parents[1]
    found = [json.loads(p.read_text()) for p in sorted(repo.glob("docs/**/*.json"))]
    events = [("bench", f) for f in found if isinstance(f, dict) and "rows" in f]
    for m in (f for f in found if isinstance(f, dict) and "names" in f):
        events += [("names", m["names"]), ("engine", m.get("engine")), ("bench", m.get("bench"))]
        events += [("step_end", s) for s in m["steps"]] + [("verified", v) for v in m["verification"]]
    assert {kind for kind, fields in events if fields} == {"names", "engine", "bench", "step_end", "verified"}
    for kind, fields in events:
        assert fields is None or contract.check_event({**fields, "event": kind}) is not None, (kind, fields)


def test_a_flood_of_events_is_stopped_before_it_fills_memory():
    record = BuildRecord()
    stream = EventStream(record)
    step_end = event_line("step_end", step="export", seconds=1, ok=True)
    for _ in range(MAX_EVENTS_OF_A_KIND):
        stream(step_end)
    with pytest.raises(StepFailed, match="sent more events than any build sends") as caught:
        stream(step_end)
    assert caught.value.exit_code == 17 and len(record.steps) == MAX_EVENTS_OF_A_KIND
    stream = EventStream(BuildRecord())      # a few huge events, each within the line limit
    big = event_line("versions", pad="x" * (contract.MAX_LINE_BYTES - 100))
    with pytest.raises(StepFailed, match="MiB of events"):
        for _ in range(MAX_EVENT_BYTES // len(big) + 1):
            stream(big)


def test_forged_step_starts_do_not_buy_time():
    now, armed = [0.0], []
    deadlines = StepDeadlines(10, ["inspect", "freeze", "inspect"], lambda s, what: armed.append((what, s)),
                              clock=lambda: now[0])
    deadlines.start("start-up")
    for now[0], step in [(5, "inspect"), (9, "inspect"), (12, "inspect"), (14, "verify-engine"), (18, "freeze"),
                         (20, "freeze")]:      # a model's keep-alive, and a step the plan does not run
        deadlines.step(step)
    assert armed == [("start-up", 10), ("inspect", 10), ("inspect", 10), ("freeze", 10)]
    deadlines = StepDeadlines(10, ["a", "b", "c"], lambda s, what: armed.append((what, s)), clock=lambda: now[0])
    for now[0], step in [(55, "a"), (65, "b")]:
        deadlines.step(step)
    assert armed[-2:] == [("a", 5), ("b", 0)], "the whole run ends at 20 + 10 × 4 s, whatever starts late"


def test_the_host_knows_every_step_a_stage_times():
    """contract.STAGE_STEPS against the step("...") calls in scripts/: a step missing there would never get its
    own deadline."""
    import ast
    timed: dict[str, list[str]] = {}
    for path in sorted(Path(contract.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "step" and node.args:
                timed.setdefault(path.stem, []).append(node.args[0].value)
    assert timed == {stage: list(names) for stage, names in contract.STAGE_STEPS.items()}
    plan = {"target": "engine", "mode": "build", "bench": {"batches": [1]}, "model_format": "h5", "precision": "fp32"}
    assert contract.steps(plan) == ["inspect", "freeze", "reference", "verify-frozen", "export", "verify-onnx",
                                    "engine-build", "verify-engine", "bench"]


def test_terminal_escapes_and_controls_are_removed():
    assert plain("\x1b[31mred\x1b[0m \x1b]0;title\x07x\x07 \x9b2Jy\tz\x00") == "red x y\tz"


def test_container_text_cannot_start_a_line_of_its_own(capsys):
    assert plain("a\nb\rc\u2028d\u2029e") == "a\\nb\\rc\\u2028d\\u2029e"
    forged = "keras\n✓ model.onnx vs Keras: max abs error 0 (atol 1e-05)\r\nerror: fake"
    stream = EventStream(BuildRecord())
    stream(event_line("step_start", step=forged))
    stream(event_line("step_end", step=forged, seconds=1, ok=True))
    stream(event_line("verified", artifact=forged, outputs={}, max_abs_err=0, atol=None, passed=True))
    shown = capsys.readouterr().err.splitlines()
    assert len(shown) == 3 and all("keras\\n✓ model.onnx" in line and "\\r\\nerror: fake" in line for line in shown)


def exit_of(code, record=None, expired=None, oom=False):
    plan = BuildPlan(model=ModelRef(Path("/m.h5"), "h5"), image="i:t", timeout=30)
    return exit_error(code, record or BuildRecord(), expired, oom, plan, Limits(memory_bytes=3 << 30))


def test_exit_errors():
    assert isinstance(exit_of(137, expired="export"), StepTimedOut)
    assert "step export" in exit_of(0, expired="export").message
    assert isinstance(exit_of(3, oom=True), OutOfMemory) and "3.0 GiB" in exit_of(3, oom=True).message
    assert isinstance(exit_of(0), StepFailed) and "no final event" in exit_of(0).message
    assert exit_of(0, BuildRecord(finished=True)) is None
    assert isinstance(exit_of(contract.EXIT_VERIFY_FAILED, BuildRecord(error={"message": "off"})), VerificationFailed)
    assert exit_of(1).message.startswith("the build container exited with code 1")


@pytest.mark.parametrize("name, safe", [("..", "model"), (".", "model"), ("", "model"), ("a b:c", "a_b_c"),
                                        ("..hidden", "hidden"), ("lstm_1", "lstm_1")])
def test_default_out_names_are_sanitized(name, safe):
    assert safe_name(name) == safe


def test_foreign_entries(tmp_path):
    (tmp_path / "trtkit.json").write_text(json.dumps({"artifacts": [{"name": "model.onnx"}]}))
    (tmp_path / "model.onnx").write_text("x")
    (tmp_path / "report.md").write_text("x")
    assert foreign_entries(tmp_path) == []
    (tmp_path / "bench.png").symlink_to(tmp_path / "model.onnx")
    (tmp_path / "notes.txt").write_text("mine")
    assert foreign_entries(tmp_path) == ["bench.png", "notes.txt"]
    (tmp_path / "trtkit.json").write_text("not json")
    assert "model.onnx" in foreign_entries(tmp_path)


def test_protected_places(tmp_path):
    protected = {"the model": tmp_path / "m" / "model.h5", "your home folder": tmp_path / "home"}
    for out in (tmp_path, tmp_path / "m", tmp_path / "home", tmp_path / "m" / "model.h5" / "x"):
        with pytest.raises(OutputNotWritable, match="refusing"):
            refuse_protected(out, protected)
    refuse_protected(tmp_path / "elsewhere", protected)
    refuse_protected(tmp_path / "home" / "project" / "out", protected)   # inside $HOME is fine


@pytest.mark.parametrize("out", ["/", "/etc", "/usr", "/mnt/data"])
def test_a_top_level_folder_or_a_mount_point_is_never_an_output(monkeypatch, out):
    monkeypatch.setattr(os.path, "ismount", lambda path: str(path) == "/mnt/data")
    with pytest.raises(OutputNotWritable, match="a top-level folder or a mount point is never replaced"):
        refuse_protected(Path(out), {})
    refuse_protected(Path("/mnt/data/out"), {})


@pytest.fixture
def h5(tmp_path):
    path = tmp_path / "m.h5"
    path.write_bytes(HDF5_SIGNATURE + b"\0" * 100)
    return path


@pytest.mark.parametrize("args, says", [
    (["--image", "Bad Repo", "--tag", "1"], "not a valid image repository"),
    (["--image", "repo@sha256:abc"], "REPO@sha256:<64 hex digits>"),
    (["--image", "repo@sha256:" + "a" * 64, "--tag", "1"], "without --tag"),
    ([], "give the container tag"),
    (["--tag", "19.07-py3\n"], "is not a valid image tag"),
    (["--tag", "x", "--gpus", "\u0661"], "GPU indices"),
    (["--tag", "x", "--atol", "nan"], "--atol must be a number"),
    (["--tag", "x", "--atol", "-1"], "--atol must be a number"),
    (["--tag", "x", "--timeout", "inf"], "--timeout must be a number"),
    (["--tag", "x", "--shapes", "a:1/2/99999999999999"], "a batch size must be a whole number"),
    (["--tag", "x", "--shapes", "a:1x9999999x9999999/2x9999999x9999999/3x9999999x9999999"], "more than 2^40"),
    (["--tag", "x", "--shapes", "a:\u0661/2/3"], "must be a whole number"),
    (["--tag", "x", "--bench", "--batch", "1,99999999999999999999"], "a batch size must be a whole number"),
    (["--tag", "x", "--bench", "--batch", "1,1e9"], "a batch size must be a whole number"),
    (["--tag", "x", "--memory", "1k"], "memory limit '1k' is out of range"),
    (["--tag", "x", "--workspace", "9999999T"], "workspace"),
    (["--tag", "x", "--strict-timing-cache"], "--strict-timing-cache needs --timing-cache FILE"),
])
def test_absurd_input_is_a_usage_error(trtkit, h5, args, says):
    result = trtkit("build", h5, "--image", "trtkit/standin", *args) if "--image" not in args else \
        trtkit("build", h5, *args)
    assert result.returncode == 2, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert says in " ".join(result.stderr.split()), result.stderr


def test_a_digest_is_a_valid_pinned_reference():
    from trtkit.options import image_reference
    digest = "sha256:" + "0123456789abcdef" * 4
    assert image_reference("nvcr.io/nvidia/tensorrt", digest) == f"nvcr.io/nvidia/tensorrt@{digest}"
    assert image_reference(f"localhost:5000/a/b@{digest}", None) == f"localhost:5000/a/b@{digest}"


def test_the_host_writes_exactly_the_plan_the_contract_reads(tmp_path):
    plan = BuildPlan(model=ModelRef(Path("/m.h5"), "h5"), image="i:t", settings={"sample_data": Path("/s.npy")})
    written = plan.container_plan("engine")
    assert tuple(written) == contract.PLAN_KEYS
    (tmp_path / "plan.json").write_text(json.dumps(written))
    assert contract.read_plan(str(tmp_path / "plan.json"))["sample_data"] == f"{contract.DATA_DIR}/sample.npy"
    (tmp_path / "plan.json").write_text(json.dumps(dict(written, surprise=1)))
    with pytest.raises(contract.PlanMismatch, match="unknown \\['surprise'\\]"):
        contract.read_plan(str(tmp_path / "plan.json"))


@pytest.mark.parametrize("target, bench, stages, outputs", [
    ("onnx", None, ["keras_stage", "onnx_stage"], ("model.onnx",)),
    ("frozen", None, ["keras_stage"], ("model.pb",)),
    ("frozen", {"batches": [1]}, ["keras_stage", "onnx_stage", "bench"], ("model.pb", "model.onnx")),
    ("engine", None, ["keras_stage", "onnx_stage", "engine"], ("model.onnx",)),
    ("tftrt", None, ["keras_stage", "onnx_stage", "tftrt"], ("model.pb", "model.onnx")),
])
def test_one_table_says_which_steps_run(target, bench, stages, outputs):
    plan = {"target": target, "mode": "build", "bench": bench, "model_format": "h5", "precision": "fp32"}
    assert contract.stages(plan) == stages and contract.keras_outputs(plan) == outputs
    assert contract.stages(dict(plan, mode="inspect")) == ["keras_stage"]


@pytest.mark.parametrize("model_format, target, stages", [
    ("onnx", "onnx", ["onnx_import"]),
    ("onnx", "engine", ["onnx_import", "engine"]),
    ("trtkit-output", "engine", ["engine"]),        # TensorRT and numpy alone: no TensorFlow in the image
])
def test_exported_models_skip_the_keras_stage(model_format, target, stages):
    assert contract.stages({"target": target, "mode": "build", "bench": None, "model_format": model_format,
                            "precision": "fp32"}) == stages


@pytest.mark.parametrize("flag, shown", [("--quiet", set()), (None, {"step"}), ("--verbose", {"step", "log"})])
def test_verbosity_decides_what_of_the_container_is_shown(capsys, flag, shown):
    from trtkit import console
    from trtkit.events import EventStream
    console.set_verbosity(flag == "--verbose", flag == "--quiet")
    try:
        stream = EventStream(BuildRecord())
        stream('::trtkit::{"event": "step_start", "step": "export"}')
        stream("a line the container printed")
    finally:
        console.set_verbosity(False, False)
    stderr = capsys.readouterr().err
    assert ("▶ export" in stderr) == ("step" in shown)
    assert ("a line the container printed" in stderr) == ("log" in shown)


def test_a_stream_that_is_not_a_tar_is_one_error(tmp_path):
    with pytest.raises(StepFailed, match="could not read the artifacts"):
        receive(iter([b"not a tar at all" * 100]), tmp_path, artifact_rule(ALLOWED), 1 << 20, "artifacts")


def test_check_shows_container_strings_as_text(monkeypatch, tmp_path, capsys):
    from trtkit import session
    from trtkit.commands.check import check
    from trtkit.engine_check import EngineRecord, verdict
    evil = "[link=https://e.x]H100[/link]\x1b]0;owned\x07\x1b[2J"
    built, here = EngineRecord("8.6.1", "H100", "9.0"), EngineRecord("8.6.1", evil, "[bold]9.0")
    (tmp_path / "trtkit.json").write_text(json.dumps({"names": {}, "model": {"path": "/m.h5"},
                                                      "image": {"reference": "i:t"}}))
    monkeypatch.setattr(session, "check", lambda plan, out, manifest: session.CheckOutcome(
        built, here, verdict(built, here, None)))
    check(tmp_path, gpus="none", timeout=30)
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown and "owned" not in shown
    assert shown.count("[link=https://e.x]H100[/link]") == 2 and "[bold]9.0" in shown    # the cell and the verdict


def sent(tmp_path, source: Path, container_path: str) -> dict[str, tuple[bytes, bytes | None]]:
    """What Inputs.path puts in the tar for source: member name -> (type, bytes of a file)."""
    inputs = Inputs(tmp_path)
    inputs.path(container_path, source)
    with inputs.finish() as archive, tarfile.open(fileobj=archive) as tar:
        return {m.name: (m.type, tar.extractfile(m).read() if m.isreg() else None) for m in tar}


def test_a_symlinked_model_is_sent_as_its_bytes_under_its_own_name(tmp_path):
    (tmp_path / "real.h5").write_bytes(b"weights")
    (tmp_path / "link.h5").symlink_to(tmp_path / "real.h5")
    members = sent(tmp_path, tmp_path / "link.h5", f"{contract.MODEL_DIR}/link.h5")
    assert list(members.values()) == [(tarfile.REGTYPE, b"weights")]
    assert list(members) == [f"{contract.MODEL_DIR}/link.h5".removeprefix(contract.ROOT + "/")]


def test_a_savedmodel_folder_follows_links_only_to_files_inside_it(tmp_path):
    real = tmp_path / "store" / "saved"
    (real / "variables").mkdir(parents=True)
    (real / "blob").write_bytes(b"pb")
    (real / "saved_model.pb").symlink_to("blob")
    (real / "variables" / "v.data").write_bytes(b"v")
    (real / "__pycache__").mkdir()
    (tmp_path / "model").symlink_to(real)               # the folder named is followed wherever it is
    members = sent(tmp_path, tmp_path / "model", f"{contract.MODEL_DIR}/model")
    top = f"{contract.MODEL_DIR}/model".removeprefix(contract.ROOT + "/")
    assert members == {top: (tarfile.DIRTYPE, None), f"{top}/blob": (tarfile.REGTYPE, b"pb"),
                       f"{top}/saved_model.pb": (tarfile.REGTYPE, b"pb"), f"{top}/variables": (tarfile.DIRTYPE, None),
                       f"{top}/variables/v.data": (tarfile.REGTYPE, b"v")}
    (tmp_path / "secret").write_bytes(b"key")
    for name, target in (("stolen", tmp_path / "secret"), ("loop", real), ("gone", real / "nothing")):
        (real / "variables" / name).symlink_to(target)
        with pytest.raises(InvalidModel, match=f"{name} is a link to .*, not to a file inside .*: refused"):
            sent(tmp_path, tmp_path / "model", f"{contract.MODEL_DIR}/model")
        (real / "variables" / name).unlink()


class FakeArchiveResponse:
    """What Box.fetch relays: a streamed HTTP response of the daemon's tar, and whether it was closed."""

    def __init__(self, chunks):
        self.chunks, self.closed = chunks, False

    def iter_content(self, chunk_size):
        return iter(self.chunks)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("members, limit, refusal", [
    ([("model.onnx", "symlink", "/etc/passwd"), ("zz_bulk", "file", b"x" * 50000)], 1 << 20, "as a link"),
    ([("zz_bulk", "file", b"x" * 50000), ("model.onnx", "file", b"onnx")], 20000, "more than 0 MiB"),
])
def test_a_refusal_mid_stream_closes_the_response(tmp_path, members, limit, refusal):
    """Left open, the daemon keeps copying and the container's removal waits for the API timeout."""
    response = FakeArchiveResponse(tar_stream(*members))
    with pytest.raises(StepFailed, match=refusal):
        receive(Archive(response), tmp_path, artifact_rule(ALLOWED), limit, "artifacts")
    assert response.closed
    response = FakeArchiveResponse(tar_stream(("model.onnx", "file", b"onnx")))
    assert receive(Archive(response), tmp_path / "whole", artifact_rule(ALLOWED), limit, "artifacts") == \
        ["model.onnx"] and response.closed


class FakeContainers:
    def __init__(self, failure):
        self.failure, self.removed = failure, []

    def list(self, **filters):
        if self.failure == "list":
            raise requests.exceptions.ReadTimeout("read timed out")
        return [self]

    def remove(self, **options):
        if self.failure == "remove":
            raise docker.errors.APIError("removal of container is already in progress")
        self.removed.append(options)


@pytest.mark.parametrize("failure", [None, "list", "remove"])
def test_a_box_that_cannot_be_removed_is_one_warning(capsys, failure):
    containers = FakeContainers(failure)
    runner = DockerRunner(SimpleNamespace(containers=containers))
    box = runner.box("image", ["true"], Limits(memory_bytes=1 << 30), {}, [])
    box.__exit__(StepFailed, StepFailed("refused"), None)
    warned = capsys.readouterr().err
    assert containers.removed == ([] if failure else [{"force": True, "v": True}])   # v: its volume too
    assert ("could not remove the build container" in warned) == bool(failure) and "Traceback" not in warned


def fill(disk: Path) -> None:
    """Fill a small file system to the last byte."""
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def cache_rule(max_bytes=1 << 30):
    return plain_files(lambda name: bool(contract.CACHE_FILE.match(name)), max_bytes)


def test_a_cache_entry_refused_mid_file_leaves_no_temporary_file(tmp_path):
    with pytest.raises(StepFailed, match="more than 2 MiB of cache files"):
        receive(tar_stream(("timing-a.cache", "file", b"x" * (3 << 20)), top="cache"), tmp_path, cache_rule(),
                2 << 20, "cache files", replace=True)
    assert list(tmp_path.iterdir()) == []


def test_a_cache_entry_on_a_full_disk_is_an_oserror_and_leaves_nothing(tiny_disk):
    (tiny_disk / "timing-a.cache").write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"):
        receive(tar_stream(("timing-a.cache", "file", b"x" * (256 << 10)), top="cache"), tiny_disk, cache_rule(),
                1 << 20, "cache files", replace=True)
    assert [p.name for p in tiny_disk.iterdir()] == ["timing-a.cache"]
    assert (tiny_disk / "timing-a.cache").read_bytes() == b"old"         # whole or not at all


class FakeBox:
    """A box whose container returns one tar stream for any path."""

    def __init__(self, *members, top):
        self.members, self.top, self.fetched = members, top, []

    def fetch(self, path):
        self.fetched.append(response := FakeArchiveResponse(tar_stream(*self.members, top=self.top)))
        return Archive(response)


def plan_in(cache: Path, monkeypatch) -> BuildPlan:
    monkeypatch.setenv("TRTKIT_CACHE", str(cache))
    model = cache.parent / "m.h5"
    model.write_bytes(HDF5_SIGNATURE)
    return BuildPlan(model=ModelRef(model, "h5"), image="i:t")


def test_a_full_cache_disk_loses_the_tensorrt_caches_with_one_warning(tiny_disk, monkeypatch, capsys):
    plan = plan_in(tiny_disk / "cache", monkeypatch)
    fill(tiny_disk)
    box = FakeBox(("timing-a.cache", "file", b"x" * (64 << 10)), top="cache")
    session._receive_cache(box, plan)
    assert "the TensorRT caches were not kept: cannot write trtkit's cache in" in capsys.readouterr().err
    assert box.fetched[0].closed
    assert not [p for p in (tiny_disk / "cache").rglob("*") if p.is_file()]


def test_evidence_on_a_full_disk_leaves_no_folder_and_the_verification_stays_the_error(tiny_disk, monkeypatch):
    plan = plan_in(tiny_disk / "cache", monkeypatch)
    (tiny_disk / "cache" / "failures").mkdir(parents=True)
    fill(tiny_disk)
    box = FakeBox(("inputs.npz", "file", b"x" * (64 << 10)), top="evidence")
    said = session._keep_evidence(box, plan)
    assert said.startswith("no evidence kept: cannot write trtkit's cache in") and "No space left" in said
    assert list((tiny_disk / "cache" / "failures").iterdir()) == [] and box.fetched[0].closed


def test_inputs_that_cannot_spool_are_one_error_and_small_ones_never_touch_the_disk(tiny_disk, monkeypatch):
    from trtkit import transfer
    fill(tiny_disk)
    small = Inputs(tiny_disk)
    small.data(f"{contract.WORK}/{contract.PLAN}", b"{}")
    archive = small.finish()
    assert requests.utils.super_len(archive) > 0     # requests sizes the body: a spooled file would spill here
    monkeypatch.setattr(transfer, "SPOOL_BYTES", 1024)
    with pytest.raises(OutputNotWritable, match=f"cannot write trtkit's cache in {tiny_disk} .No space left"):
        Inputs(tiny_disk).data(f"{contract.WORK}/{contract.PLAN}", b"x" * 4096)


def test_an_engine_record_forged_by_an_onnx_build_is_not_kept(tmp_path):
    """Well-formed, so check_event takes it; but only the engine step makes an engine, so an ONNX build's
    manifest (and Triton's max_batch_size, which reads it) never carries one."""
    from trtkit import manifest
    from trtkit.modelfile import ModelRef
    from trtkit.targets import TargetChoice
    from trtkit.toolchain import Toolchain
    record = BuildRecord()
    record.apply({"event": "engine", "tensorrt": "8.6.1", "gpu": "forged", "compute_capability": "9.0",
                  "profiles": {"x": {"min": [1], "opt": [1], "max": [1]}}, "portability_note": "forged"})
    (tmp_path / "model.h5").write_bytes(b"h5")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="i:t")
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    for target, kept in (("onnx", None), ("engine", record.engine)):
        made = manifest.make(plan, TargetChoice(target, "test"), toolchain, record, tmp_path, 0.0)
        assert made["engine"] == kept


def test_a_model_name_with_a_line_break_stays_inside_reproduce_sh_comments(tmp_path):
    """reproduce.sh names the model in a comment; a file name is any bytes but '/' and NUL, so a line break in it
    must not end the comment and make the rest of the name a command the script runs."""
    import subprocess

    from trtkit import reproduce
    from trtkit.toolchain import Toolchain
    out, bin_dir = tmp_path / "out", tmp_path / "bin"
    out.mkdir(), bin_dir.mkdir()
    model = tmp_path / "model\ntouch pwned\n.h5"
    model.write_bytes(b"h5")
    plan = BuildPlan(model=ModelRef(model, "h5"), image="trtkit/standin:19.07-py3")
    reproduce.write(out, plan, "onnx", Toolchain("t", "sha256:t", {}, "sha256:base", []), Limits(1 << 30))
    (bin_dir / "docker").write_text("#!/bin/sh\necho sha256:base\n")
    (bin_dir / "trtkit").write_text(f"#!/bin/sh\n[ \"$1\" = --version ] || printf '%s\\n' \"$2\" > {tmp_path}/model\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "model").read_text() == f"{model}\n"       # the build line still gets the name whole
    assert not (tmp_path / "pwned").exists()


def test_a_folder_that_cannot_be_swapped_in_leaves_the_old_one_whole(tmp_path, monkeypatch):
    """replace_folder (the Triton model folder, the cache of finished builds): the old folder stays whole until the
    new one takes its place, so a swap that fails (or a reader meanwhile) never finds it half deleted."""
    dest = tmp_path / "model"
    (dest / "1").mkdir(parents=True)
    (dest / "config.pbtxt").write_text("old")
    (dest / "1" / "model.plan").write_bytes(b"old engine")
    real_rename = os.rename

    def rename(source, target):
        if Path(target) == dest and (Path(source) / "config.pbtxt").read_text() == "new":
            raise OSError(13, "Permission denied")
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        replace_folder(dest, lambda new: (new / "config.pbtxt").write_text("new"))
    assert (dest / "config.pbtxt").read_text() == "old" and (dest / "1" / "model.plan").read_bytes() == b"old engine"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    monkeypatch.setattr(os, "rename", real_rename)
    replace_folder(dest, lambda new: (new / "config.pbtxt").write_text("new"))
    assert [p.name for p in dest.iterdir()] == ["config.pbtxt"] and [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("names", [{"event": "done"}, {"event": "versions", "inputs": "x"}])
def test_an_earlier_output_cannot_name_its_node_names_another_event(tmp_path, names):
    """Node names are checked as the contract's names event: a trtkit.json whose names carry an "event" key of
    their own must not be checked as that (emptier) event instead, and pass without inputs or outputs."""
    from trtkit.exported import NEEDED, read_earlier_build
    for name in NEEDED:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "trtkit.json").write_text(json.dumps({"model": {"path": "m.h5"}, "names": names}))
    with pytest.raises(InvalidModel, match="node names of the wrong shape"):
        read_earlier_build(tmp_path)
