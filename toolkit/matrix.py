"""Many builds at once: every cell of the project's matrix runs as its own `trtkit build` child process.

A child has its own log, its own signals and its own container, so one build can neither garble nor stop
another, and trtkit's handling of Ctrl-C (the container removed, nothing half-written) holds for each.
At most one build runs per slot: a GPU index (--gpus 0,1: one build per GPU at a time, which that build
alone sees), or, without indices, one of --jobs CPU slots. No scheduler beyond that: each free slot takes
the next cell in the project's order.
"""
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import console, reproduce
from .console import Signalled, err, out, plain, print_json, show
from .errors import Interrupted, OutputNotWritable, StepFailed, TrtkitError
from .plan import BuildPlan, GpuRequest
from .project import Cell
from .report import Section, print_table

MAX_DEFAULT_JOBS = 4
HEADERS = ["model", "tag", "target", "precision", "result", "max error", "seconds", "out"]


def slots(gpus: GpuRequest, jobs: int | None) -> Sequence[str | None]:
    """What may run at once: one build per listed GPU (at most `jobs` of them); without GPU indices,
    `jobs` builds (default: one per core, at most 4)."""
    if gpus.mode == "ids":
        return list(dict.fromkeys(gpus.ids))[:jobs]
    return [None] * (jobs or min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


def child_command(plan: BuildPlan) -> list[str]:
    """The build as a `trtkit build` of its own: every option explicit (as reproduce.sh has them), and this
    run's own (the out folder, --force, --locked, --triton-repo); its result as JSON on stdout."""
    args = reproduce.arguments(plan, plan.target, plan.image) + ["--out", str(plan.out_dir), "--json"]
    args += ["--force"] * plan.force + ["--locked"] * bool(plan.locked)
    args += ["--triton-repo", str(plan.triton_repo)] if plan.triton_repo else []
    verbosity = ["--verbose"] if console.verbosity == console.VERBOSE else []
    return [sys.executable, "-m", "trtkit", *verbosity, "build", *args]


@dataclass
class Run:
    """One cell's build: its progress, then its result."""
    cell: Cell
    plan: BuildPlan
    slot: str | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    manifest: dict | None = None
    last_line: str = ""
    error: str = ""

    @property
    def label(self) -> str:
        return " ".join((self.cell.model, self.cell.tag, self.cell.target, self.cell.precision))

    @property
    def out_dir(self) -> Path:
        return Path(self.cell.values["out"])

    @property
    def log(self) -> Path:
        """Beside the out folder, so a failed build (which leaves no folder) keeps its log too."""
        return self.out_dir.with_name(f"{self.out_dir.name}.log")

    def note(self, line: str) -> None:
        text = plain(line.rstrip("\r\n")).strip()   # the line's own ending is not a break inside it
        if text:
            self.last_line = text
        if text.startswith("error:"):
            self.error = text.removeprefix("error:").strip()

    def finish(self, code: int, stdout: bytes) -> None:
        self.ended = time.time()
        self.exit_code = 128 - code if code < 0 else code      # killed by signal N: 128 + N, as a shell says
        if code == 0:
            try:
                self.manifest = json.loads(stdout)
            except ValueError:
                self.exit_code, self.error = StepFailed.exit_code, "the build printed no result"

    def seconds(self) -> float | None:
        return round((self.ended or time.time()) - self.started, 1) if self.started else None

    def max_error(self) -> float | None:
        checks = (self.manifest or {}).get("verification") or []
        return max((check["max_abs_err"] for check in checks), default=None)

    def result(self) -> str:
        if self.started is None:
            return "not run"
        if self.ended is None:
            return "running" + (f" on GPU {self.slot}" if self.slot is not None else "")
        if self.manifest is None:
            return f"failed (exit {self.exit_code})"
        checks = self.manifest.get("verification") or []
        verified = bool(checks) and all(c["passed"] and c["atol"] is not None for c in checks)
        return ("verified" if verified else "built, error reported only") + \
            (" (reused)" if self.manifest.get("reused_from") else "")

    def status(self) -> str:
        """The build's status line."""
        detail = self.last_line if self.ended is None else self.error
        seconds = f" {elapsed:.0f} s" if (elapsed := self.seconds()) else ""
        return f"{self.label}: {self.result()}{seconds}" + (f": {detail}" if detail else "")

    def row(self) -> list:
        return [self.cell.model, self.cell.tag, self.cell.target, self.cell.precision, self.result(),
                self.max_error(), self.seconds(), _shown(self.out_dir)]

    def record(self) -> dict[str, Any]:
        return {**dict(zip(HEADERS[:5], self.row())), "max_abs_err": self.max_error(), "exit_code": self.exit_code,
                "error": self.error or None, "gpu": self.slot, "started": self.started, "ended": self.ended,
                "seconds": self.seconds(), "out_dir": str(self.out_dir), "log": str(self.log)}


class _Pool:
    """One worker thread per slot; each runs the next queued build as a child until none is left."""

    def __init__(self, runs: list[Run], announce: Callable[[Run], None]):
        self.queue = deque(runs)
        self.announce = announce
        self.lock = threading.Lock()       # guards the queue, the children and stopping
        self.children: set[subprocess.Popen] = set()
        self.stopping = False
        self.working = 0
        self.finished = threading.Event()

    def run(self, slots: Sequence[str | None]) -> None:
        self.working = min(len(slots), len(self.queue))
        for slot in slots[:self.working]:
            threading.Thread(target=self._work, args=(slot,), daemon=True).start()
        self._wait()

    def stop(self, signum: int) -> None:
        """No new builds; the running ones get the signal (each removes its container), then they are awaited."""
        with self.lock:
            self.stopping = True
            for child in self.children:
                child.send_signal(signum)
        self._wait()

    def _wait(self) -> None:
        """Until every worker is done. Not Thread.join: a signal's exception raised inside join can leave
        a running thread marked as stopped (CPython 3.11's bpo-45274 fix releases its lock)."""
        while not self.finished.wait(0.2):
            pass

    def _work(self, slot: str | None) -> None:
        try:
            while (run := self._next()) is not None:
                try:
                    self._build(run, slot)
                except OSError as e:
                    run.started = run.started or time.time()
                    run.exit_code = OutputNotWritable.exit_code
                    run.error, run.ended = f"cannot write {run.log}: {e.strerror or e}", time.time()
                if run.started:
                    self.announce(run)
        finally:
            with self.lock:
                self.working -= 1
                if not self.working:
                    self.finished.set()

    def _next(self) -> Run | None:
        with self.lock:
            return None if self.stopping or not self.queue else self.queue.popleft()

    def _build(self, run: Run, slot: str | None) -> None:
        plan = run.plan if slot is None else dataclasses.replace(run.plan, gpus=GpuRequest("ids", (slot,)))
        run.log.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as stdout, run.log.open("w") as log:
            with self.lock:
                if self.stopping:
                    return
                child = subprocess.Popen(child_command(plan), stdout=stdout, stderr=subprocess.PIPE,
                                         encoding="utf-8", errors="replace", start_new_session=True)
                self.children.add(child)
            run.slot, run.started = slot, time.time()
            self.announce(run)
            assert child.stderr is not None
            for line in child.stderr:
                log.write(line)
                run.note(line)
            code = child.wait()
            with self.lock:
                self.children.discard(child)
            stdout.seek(0)
            run.finish(code, stdout.read())


def run(builds: list[tuple[Cell, BuildPlan]], slots: Sequence[str | None], json_output: bool) -> None:
    """Every build, at most one per slot at a time; then the table (or JSON). Raises when any build failed:
    the exit code is the first failed build's, in the project's order."""
    runs = [Run(cell, plan) for cell, plan in builds]
    live = console.verbosity >= console.PROGRESS and err.is_terminal
    pool = _Pool(runs, announce=(lambda build: None) if live else (lambda build: show(build.status())))
    try:
        with _status_lines(runs) if live else contextlib.nullcontext():
            pool.run(slots)
    except (Signalled, KeyboardInterrupt) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        pool.stop(signum)
        _report(runs, json_output)
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}: the running builds were stopped and their "
                          "containers removed; finished builds are kept", exit_code=128 + signum) from None
    _report(runs, json_output)
    failed = [r for r in runs if r.exit_code]
    if failed:
        first = failed[0]
        raise TrtkitError(f"{len(failed)} of {len(runs)} builds failed; the exit code is the first one's, "
                          f"{first.label} (exit {first.exit_code}): {first.error or 'see ' + str(first.log)}",
                          exit_code=first.exit_code)


def _status_lines(runs: list[Run]) -> Live:
    def lines() -> Table:
        grid = Table.grid()
        for run in runs:
            grid.add_row(Text(run.status(), overflow="ellipsis", no_wrap=True))
        return grid
    return Live(get_renderable=lines, console=err, refresh_per_second=4, transient=True)


def _report(runs: list[Run], json_output: bool) -> None:
    if json_output:
        print_json({"builds": [run.record() for run in runs]})
        return
    print_table(Section("matrix", "Builds", HEADERS, [run.row() for run in runs]))
    for run in runs:
        if run.exit_code:
            out.print(Text(f"{run.label}: {run.error or 'failed'} (log: {run.log})"))


def _shown(path: Path) -> Path:
    """Relative to the current folder when inside it, so that the table stays narrow."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
