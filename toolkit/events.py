"""The container's output: events (JSON lines) build the record, the rest is log.

The steps write `::trtkit::{json}` lines (contract.EVENT_PREFIX) on stdout. A
model's own code runs in the same process and can print anything, so a line is
an event only when it parses and has its kind's shape (contract.check_event);
anything else is shown as plain text, never as markup or raw escapes.
"""
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from toolkit.console import err, plain, show
from toolkit.contract import contract

MAX_SHOWN = 4000    # characters of one log line on the terminal (events may be longer)


@dataclass
class BuildRecord:
    versions: dict = field(default_factory=dict)
    names: dict | None = None
    steps: list = field(default_factory=list)
    verification: list = field(default_factory=list)
    artifacts: list = field(default_factory=list)
    engine: dict | None = None
    bench: dict | None = None
    error: dict | None = None
    finished: bool = False      # the pipeline's final event arrived
    log_tail: deque = field(default_factory=lambda: deque(maxlen=30))

    def apply(self, event: dict) -> None:
        kind = event.pop("event")
        if kind == "versions":
            self.versions.update({k: v for k, v in event.items() if isinstance(v, str)})
        elif kind == "names":
            self.names = event
        elif kind == "step_end":
            self.steps.append(event)
        elif kind == "verified":
            self.verification.append(event)
        elif kind == "artifact":
            self.artifacts.append(event)
        elif kind in ("engine", "bench", "error"):
            setattr(self, kind, event)
        elif kind == contract.FINAL_EVENT:
            self.finished = True


def parse_event(line: str) -> dict | None:
    """The event a line carries, or None (log text, malformed or unknown events)."""
    if not line.startswith(contract.EVENT_PREFIX):
        return None
    try:
        return contract.check_event(json.loads(line[len(contract.EVENT_PREFIX):]))
    except (ValueError, RecursionError):
        return None


class EventStream:
    """Feeds container output lines into a record and onto the terminal.

    on_step(name) is called when a step starts (the Docker runner arms its deadline there).
    """

    def __init__(self, record: BuildRecord, on_step: Callable[[str], None] | None = None):
        self.record = record
        self.on_step = on_step

    def __call__(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            line = line if len(line) <= MAX_SHOWN else line[:MAX_SHOWN] + " [cut]"
            self.record.log_tail.append(plain(line))
            show(f"  {line}", style="dim")
            return
        self._show(event)
        if event["event"] == "step_start" and self.on_step:
            self.on_step(plain(event["step"]))
        self.record.apply(event)

    def _show(self, event: dict) -> None:
        kind = event["event"]
        if kind == "step_start":
            show(f"▶ {event['step']}", style="bold cyan")
        elif kind == "step_end":
            err.print("[green]✓[/]" if event["ok"] else "[red]✗[/]", end=" ", markup=True)
            show(f"{event['step']} ({event['seconds']:.2f} s)")
        elif kind == "verified":
            err.print("[green]✓[/]" if event["passed"] else "[red]✗[/]", end=" ", markup=True)
            atol = "report only" if event["atol"] is None else f"atol {event['atol']:.0e}"
            show(f"{event['artifact']} vs Keras: max abs error {event['max_abs_err']:.3g} ({atol})")
