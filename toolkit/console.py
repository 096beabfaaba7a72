"""Where output goes: progress and logs to stderr, results (and --json) to stdout.

Text that came out of a container is never markup: it goes through plain()
(terminal escapes and control characters removed, line breaks escaped) into a rich Text.
How much is shown: --quiet (errors and results), the default (progress:
steps, verification, the target), --verbose (also every container log line).
"""
import functools
import json
import re
import signal
import sys

import typer
from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.text import Text

from .errors import Interrupted, TrtkitError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

# ANSI escape sequences (CSI, OSC, and two-character escapes), then any other control character.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Line breaks, shown as escapes: container text is one line of output, never a line that looks like trtkit's own.
_LINE_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r", "\u2028": "\\u2028", "\u2029": "\\u2029"})
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
QUIET, PROGRESS, VERBOSE = 0, 1, 2
verbosity = PROGRESS


def set_verbosity(verbose: bool, quiet: bool) -> None:
    global verbosity
    verbosity = VERBOSE if verbose else QUIET if quiet else PROGRESS


def plain(text) -> str:
    """Container text made safe for one terminal line: no escapes, no control characters, line breaks as \\n;
    tabs kept."""
    return _CONTROLS.sub("", _ESCAPES.sub("", str(text)).translate(_LINE_BREAKS))


def show(text, style: str = "", mark: tuple[str, str] | None = None, level: int = PROGRESS) -> None:
    """Print untrusted text on stderr as text, never as markup; after a (symbol, style) mark if given."""
    if verbosity >= level:
        err.print(Text.assemble(mark or "", " " if mark else "", (plain(text), style)))


def live_progress(*columns: str | ProgressColumn) -> Progress:
    """Progress bars on stderr when it is a terminal (a log would get only blank lines), unless --quiet."""
    return Progress(*columns, console=err, transient=True, disable=verbosity < PROGRESS or not err.is_terminal)


def warn(message: str) -> None:
    err.print(Text.assemble(("warning:", "yellow"), " ", plain(message)))


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


class Signalled(BaseException):
    """SIGINT, SIGTERM or SIGHUP: unwinds like Ctrl-C, so every `finally` cleans up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    for s in SIGNALS:               # cleanup must not be cut short by a second signal
        signal.signal(s, signal.SIG_IGN)
    raise Signalled(signum)


def user_errors(command):
    """Show TrtkitError as one line and exit with its code; signals exit 128 + their number."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        for s in SIGNALS:
            signal.signal(s, _on_signal)
        try:
            return command(*args, **kwargs)
        except (Signalled, KeyboardInterrupt) as e:
            signum = getattr(e, "signum", signal.SIGINT)
            error = Interrupted(f"interrupted by {signal.Signals(signum).name}: "
                                "the container was removed and nothing was written", exit_code=128 + signum)
        except TrtkitError as e:
            error = e
        err.print(Text.assemble(("error:", "bold red"), " ", plain(error.one_line().replace("\n", " "))))
        raise typer.Exit(error.exit_code)

    return wrapper
