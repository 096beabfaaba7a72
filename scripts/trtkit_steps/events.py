"""What a step tells the host: events on stdout (the contract's prefix), log lines, relayed tools, timed
steps, and the error event its main ends with."""
import json
import subprocess
import sys
import time

from trtkit_steps import contract
from trtkit_steps.errors import StepError


def emit(event, **fields):
    """Send one event to the host."""
    fields["event"] = event
    sys.stdout.write(contract.EVENT_PREFIX + json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


def run_relayed(args, on_line, env=None):
    """Run a command, echoing each line of its output (stderr included) as it comes; its exit code."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, universal_newlines=True)
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        on_line(line)
    return proc.wait()


def log(message):
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class step(object):
    """Context manager that times a named step and reports start and end."""

    def __init__(self, name):
        self.name = name
        self.seconds = None

    def __enter__(self):
        emit("step_start", step=self.name)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.seconds = time.perf_counter() - self._t0
        emit("step_end", step=self.name, seconds=round(self.seconds, 3), ok=exc_type is None)
        return False


def run_main(main):
    """Run a step's main(); turn StepError into an error event and exit code."""
    try:
        main(sys.argv[1:])
    except StepError as e:
        emit("error", kind=type(e).__name__, message=str(e), details=e.details)
        sys.exit(e.exit_code)
