"""toolkit/events.py: the container's events, checked before anything reads them."""
import json
from typing import cast

import pytest
from box_doubles import exit_of

from trtkit import console, report, triton
from trtkit.console import plain
from trtkit.errors import StepFailed
from trtkit.events import MAX_EVENT_BYTES, MAX_EVENTS_OF_A_KIND, BuildRecord, EventStream, StepDeadlines, parse_event
from trtkit.manifest import Manifest
from trtkit_steps import contract


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
    ("engine", dict(ENGINE, layer_precisions={"fp16": "most"})),      # into the summary's warning
    ("engine", dict(ENGINE, layer_precisions={"<b>fp64</b>": 1})),
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


def test_container_text_cannot_start_a_line_of_its_own(capsys):
    assert plain("a\nb\rc\u2028d\u2029e") == "a\\nb\\rc\\u2028d\\u2029e"
    forged = "keras\n✓ model.onnx vs Keras: max abs error 0 (atol 1e-05)\r\nerror: fake"
    stream = EventStream(BuildRecord())
    stream(event_line("step_start", step=forged))
    stream(event_line("step_end", step=forged, seconds=1, ok=True))
    stream(event_line("verified", artifact=forged, outputs={}, max_abs_err=0, atol=None, passed=True))
    shown = capsys.readouterr().err.splitlines()
    assert len(shown) == 3 and all("keras\\n✓ model.onnx" in line and "\\r\\nerror: fake" in line for line in shown)


@pytest.mark.parametrize("flag, shown", [("--quiet", set()), (None, {"step"}), ("--verbose", {"step", "log"})])
def test_verbosity_decides_what_of_the_container_is_shown(capsys, flag, shown):
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
