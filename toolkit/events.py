"""The container's output: events (JSON lines) build the record, the rest is log.

The steps write `::trtkit::{json}` lines (contract.EVENT_PREFIX) on stdout. A
model's own code runs in the same process and can print anything, so a line is
an event only when it parses and has its kind's shape (event_shapes.check_event);
anything else is shown as plain text, never as markup or raw escapes.
"""
import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from trtkit_steps import contract, event_shapes

from .console import VERBOSE, plain, show, warn
from .errors import StepFailed

MAX_SHOWN = 4000    # characters of one log line on the terminal (events may be longer)
# A real build sends at most a dozen events of a kind (steps, verifications, artifacts) and well under a MiB in
# all; a container that sends more floods the host's memory, trtkit.json and the report, and is stopped.
MAX_EVENTS_OF_A_KIND = 200
MAX_EVENT_BYTES = 16 << 20


# The events' payloads, as event_shapes.check_event guarantees them (extra keys may come along).
class IoName(TypedDict):
    name: str
    keras_tensor: str
    frozen: str
    imported: str


class InputName(IoName):
    shape: list[int | None]
    dtype: str


class OutputName(IoName, total=False):
    shape: list[int | None]     # both absent in manifests of trtkit before 2026-11-27
    dtype: str


class Names(TypedDict):
    inputs: list[InputName]
    outputs: list[OutputName]
    params: int


class StepTime(TypedDict):
    step: str
    seconds: float
    ok: bool


class Verification(TypedDict):
    """One artifact against Keras: each output's errors and its own tolerance; max_abs_err and atol are those of
    the output that decided (comparison.deciding in the container)."""
    artifact: str
    outputs: dict[str, dict[str, float | None]]
    max_abs_err: float
    atol: float | None
    passed: bool


class FailedRoute(TypedDict):
    route: str
    error: str


class ExportRoute(TypedDict):
    route: str                  # event_shapes.EXPORT_ROUTES
    failed: list[FailedRoute]   # the routes tried before it, each with why it failed


class Warning_(TypedDict):
    message: str
    layer: str | None           # the Keras layer it concerns, where known


class BenchRow(TypedDict, total=False):
    batch: int
    framework: str
    mode: str
    device: str                 # where it ran: "cpu: MODEL" or "gpu: NAME"; speed-ups only within one device
    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput_per_s: float | None
    speedup_vs_predict: float | None
    max_abs_err: float | None
    error: str                  # instead of the timings, when the framework failed at that batch


class BenchResult(TypedDict):
    device: str
    rows: list[BenchRow]


@dataclass
class BuildRecord:
    versions: dict[str, str] = field(default_factory=dict)
    names: Names | None = None
    steps: list[StepTime] = field(default_factory=list)
    verification: list[Verification] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    export: ExportRoute | None = None
    warnings: list[Warning_] = field(default_factory=list)
    engine: dict[str, Any] | None = None
    engine_check: dict[str, Any] | None = None
    precision: dict[str, Any] | None = None     # the fp16 / int8 rewrite (onnx_precision), and the engine's recipe
    bench: BenchResult | None = None
    error: dict[str, Any] | None = None
    finished: bool = False      # the pipeline's final event arrived
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=30))

    def apply(self, event: dict) -> None:
        kind = event.pop("event")
        if kind == "versions":
            self.versions.update({k: v for k, v in event.items() if isinstance(v, str)})
        elif kind == "names":
            self.names = cast(Names, event)
        elif kind == "step_end":
            self.steps.append(cast(StepTime, event))
        elif kind == "verified":
            self.verification.append(cast(Verification, event))
        elif kind == "artifact":
            self.artifacts.append(event)
        elif kind == "export":
            self.export = cast(ExportRoute, event)
        elif kind == "warning":
            self.warnings.append(cast(Warning_, {"message": event["message"], "layer": event.get("layer")}))
        elif kind == "bench":
            self.bench = cast(BenchResult, event)
        elif kind in ("precision", "recipe"):
            self.precision = {**(self.precision or {}), **({"recipe": event} if kind == "recipe" else event)}
        elif kind in ("engine", "engine_check", "error"):
            setattr(self, kind, event)
        elif kind == contract.FINAL_EVENT:
            self.finished = True


def parse_event(line: str) -> dict | None:
    """The event a line carries, or None (log text, malformed or unknown events)."""
    if not line.startswith(contract.EVENT_PREFIX):
        return None
    try:
        return event_shapes.check_event(json.loads(line[len(contract.EVENT_PREFIX):]))
    except (ValueError, RecursionError):
        return None


class EventStream:
    """Feeds container output lines into a record and onto the terminal.

    on_step(name) is called when a step starts (the Docker runner arms its deadline there).
    """

    def __init__(self, record: BuildRecord, on_step: Callable[[str], None] | None = None):
        self.record = record
        self.on_step = on_step
        self.received: Counter[str] = Counter()
        self.received_bytes = 0

    def __call__(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            line = line if len(line) <= MAX_SHOWN else line[:MAX_SHOWN] + " [cut]"
            self.record.log_tail.append(plain(line))
            show(f"  {line}", style="dim", level=VERBOSE)
            return
        self._count(event["event"], len(line))
        self._show(event)
        if event["event"] == "step_start" and self.on_step:
            self.on_step(plain(event["step"]))
        self.record.apply(event)

    def _count(self, kind: str, size: int) -> None:
        """Raises once the container has sent more events than any build sends: the box around the run removes it."""
        self.received[kind] += 1
        self.received_bytes += size
        if self.received[kind] > MAX_EVENTS_OF_A_KIND or self.received_bytes > MAX_EVENT_BYTES:
            raise StepFailed(f"the build container sent more events than any build sends ({self.received[kind]} "
                             f"{kind} events, {self.received_bytes / 2**20:.1f} MiB of events; a build sends at most "
                             f"{MAX_EVENTS_OF_A_KIND} of a kind and {MAX_EVENT_BYTES >> 20} MiB): it was stopped")

    def _show(self, event: dict) -> None:
        kind = event["event"]
        if kind == "step_start":
            show(f"▶ {event['step']}", style="bold cyan")
        elif kind == "step_end":
            show(f"{event['step']} ({event['seconds']:.2f} s)", mark=_mark(event["ok"]))
        elif kind == "verified":
            atol = "report only" if event["atol"] is None else f"atol {event['atol']:.3g}"   # scaled ones too
            show(f"{event['artifact']} vs Keras: max abs error {event['max_abs_err']:.3g} ({atol})",
                 mark=_mark(event["passed"]))
        elif kind == "export":
            for failed in event["failed"]:
                show(f"export route {failed['route']} failed: {failed['error']}", style="yellow")
            show(f"ONNX export: {event['route']}")
        elif kind == "warning":
            warn(event["message"])


def _mark(ok: bool) -> tuple[str, str]:
    return ("✓", "green") if ok else ("✗", "red")


class StepDeadlines:
    """--timeout per step, armed by the container's step_start events, which a model can forge.

    A step gets a fresh deadline only when it is one the plan runs (contract.steps), and only the first time
    it starts; no deadline reaches past timeout × (steps + 1), the start-up's share and each step's.
    """

    def __init__(self, timeout: float, steps: list[str], arm: Callable[[float, str], None],
                 clock: Callable[[], float] = time.monotonic):
        self.timeout, self.arm, self.clock = timeout, arm, clock
        self.unstarted = Counter(steps)
        self.ends = clock() + timeout * (len(steps) + 1)

    def start(self, what: str) -> None:
        """Arm the deadline of `what` (the start-up, or a step), within the whole run's."""
        self.arm(min(self.timeout, max(self.ends - self.clock(), 0.0)), what)

    def step(self, name: str) -> None:
        if self.unstarted[name] > 0:
            self.unstarted[name] -= 1
            self.start(name)

