"""The container's output: events (JSON lines) build the record, the rest is log.

scripts/trtkit_steps/common.py writes events as `::trtkit::{json}` lines on
stdout. This module turns them into a BuildRecord and shows progress live.
"""
import json
from collections import deque
from dataclasses import dataclass, field

from rich.markup import escape

from toolkit.console import err

EVENT_PREFIX = "::trtkit::"


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
    log_tail: deque = field(default_factory=lambda: deque(maxlen=30))

    def apply(self, event: dict) -> None:
        kind = event.pop("event")
        if kind == "versions":
            self.versions.update({k: v for k, v in event.items() if v is not None})
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


class EventStream:
    """Feeds container output lines into a record and onto the terminal."""

    def __init__(self, record: BuildRecord):
        self.record = record

    def __call__(self, line: str) -> None:
        if not line.startswith(EVENT_PREFIX):
            self.record.log_tail.append(line)
            err.print(f"  [dim]{escape(line)}[/dim]", markup=True)
            return
        event = json.loads(line[len(EVENT_PREFIX):])
        self._show(event)
        self.record.apply(event)

    def _show(self, event: dict) -> None:
        kind = event["event"]
        if kind == "step_start":
            err.print(f"[bold cyan]▶ {event['step']}[/]", markup=True)
        elif kind == "step_end":
            mark = "[green]✓[/]" if event["ok"] else "[red]✗[/]"
            err.print(f"{mark} {event['step']} ({event['seconds']:.2f} s)", markup=True)
        elif kind == "verified":
            mark = "[green]✓[/]" if event["passed"] else "[red]✗[/]"
            atol = "report only" if event["atol"] is None else f"atol {event['atol']:.0e}"
            err.print(f"{mark} {event['artifact']} vs Keras: max abs error {event['max_abs_err']:.3g} ({atol})",
                      markup=True)
