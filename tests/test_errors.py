"""toolkit/errors.py: the exit codes."""
from trtkit.errors import ALL_ERRORS


def test_exit_codes_are_distinct():
    codes = [e.exit_code for e in ALL_ERRORS]
    assert len(codes) == len(set(codes)) and 1 not in codes and 2 not in codes
