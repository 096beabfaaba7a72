"""User-facing errors: one exception type per failure a user can act on.

Each carries the exit code the CLI returns, so scripts and CI can tell
failures apart; the CLI prints the message as one line, without a traceback.
"""


class TrtkitError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ModelNotFound(TrtkitError):
    exit_code = 10


class InvalidModel(TrtkitError):
    exit_code = 11


class DockerUnavailable(TrtkitError):
    exit_code = 12


class ImageNotFound(TrtkitError):
    exit_code = 13


class RegistryUnavailable(TrtkitError):
    exit_code = 14


class GpuUnavailable(TrtkitError):
    exit_code = 15


class OutputNotWritable(TrtkitError):
    exit_code = 16


class StepFailed(TrtkitError):
    exit_code = 17


class VerificationFailed(TrtkitError):
    exit_code = 18


class TargetUnsupported(TrtkitError):
    exit_code = 19


class ToolchainBuildFailed(TrtkitError):
    exit_code = 20


class Interrupted(TrtkitError):
    exit_code = 130


# Exit codes of the in-container steps (scripts/trtkit_steps/common.py) -> host errors.
STEP_EXIT_CODES = {
    3: StepFailed,
    4: InvalidModel,
    5: VerificationFailed,
    6: TargetUnsupported,
}

ALL_ERRORS = [ModelNotFound, InvalidModel, DockerUnavailable, ImageNotFound, RegistryUnavailable,
              GpuUnavailable, OutputNotWritable, StepFailed, VerificationFailed, TargetUnsupported,
              ToolchainBuildFailed, Interrupted]
