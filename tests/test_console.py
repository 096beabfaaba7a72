"""toolkit/console.py: progress bars, and container text made plain."""
import pytest

from trtkit import console
from trtkit.console import plain


@pytest.mark.parametrize("terminal, quiet, shown", [(True, False, True), (True, True, False), (False, False, False)])
def test_progress_bars_only_on_a_terminal_and_never_when_quiet(monkeypatch, terminal, quiet, shown):
    monkeypatch.setattr(console, "err", console.Console(stderr=True, force_terminal=terminal))
    try:
        console.set_verbosity(False, quiet)
        assert console.live_progress().disable is not shown
    finally:
        console.set_verbosity(False, False)


def test_terminal_escapes_and_controls_are_removed():
    assert plain("\x1b[31mred\x1b[0m \x1b]0;title\x07x\x07 \x9b2Jy\tz\x00") == "red x y\tz"
