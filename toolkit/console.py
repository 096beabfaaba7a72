"""Where output goes: progress and logs to stderr, results (and --json) to stdout."""
import functools
import json
import sys

import typer
from rich.console import Console

from toolkit.errors import Interrupted, TrtkitError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def user_errors(command):
    """Show TrtkitError as one line and exit with its code; Ctrl-C exits 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            error = Interrupted("interrupted: the container was removed and nothing was written")
        except TrtkitError as e:
            error = e
        err.print(f"[bold red]error:[/] {error.one_line()}", markup=True)
        raise typer.Exit(error.exit_code)

    return wrapper
