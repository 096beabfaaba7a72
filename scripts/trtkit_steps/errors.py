"""What a step can fail with: errors worded for the user, each with the exit code the host maps."""
from trtkit_steps import contract


class StepError(Exception):
    """A failure the user can act on: shown as one line, no traceback."""

    exit_code = contract.EXIT_STEP_FAILED

    def __init__(self, message, details=None):
        Exception.__init__(self, message)
        self.details = details or {}


class InvalidModel(StepError):
    exit_code = contract.EXIT_INVALID_MODEL


class UntrustedModel(StepError):
    """Loading the model would run code it carries, and --trust-model was not given."""
    exit_code = contract.EXIT_UNTRUSTED_MODEL


class VerificationFailed(StepError):
    exit_code = contract.EXIT_VERIFY_FAILED


class Unsupported(StepError):
    exit_code = contract.EXIT_UNSUPPORTED


def first_line(error):
    """An error's first line; a StepError is already worded for the user, others say their type.
    Never fails, even on an empty message."""
    lines = [text.strip() for text in str(error).splitlines() if text.strip()]
    if isinstance(error, StepError) and lines:
        return lines[0][:300]
    return ("%s: %s" % (type(error).__name__, lines[0]) if lines else type(error).__name__)[:300]
