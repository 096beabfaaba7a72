"""User-facing errors: one exception type per failure a user can act on.

Each carries the exit code the CLI returns, so scripts and CI can tell
failures apart; the CLI prints the message as one line, without a traceback.
"""
from trtkit_steps import contract


class TrtkitError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

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


class OutOfMemory(TrtkitError):
    exit_code = 21


class StepTimedOut(TrtkitError):
    exit_code = 22


class UntrustedModel(TrtkitError):
    exit_code = 23


class LockMismatch(TrtkitError):
    exit_code = 24


class Interrupted(TrtkitError):
    exit_code = 130     # 128 + the signal: 130 SIGINT, 143 SIGTERM, 129 SIGHUP


# Exit codes of the in-container steps (scripts/trtkit_steps/contract.py) -> host errors.
STEP_EXIT_CODES = {
    contract.EXIT_STEP_FAILED: StepFailed,
    contract.EXIT_INVALID_MODEL: InvalidModel,
    contract.EXIT_VERIFY_FAILED: VerificationFailed,
    contract.EXIT_UNSUPPORTED: TargetUnsupported,
    contract.EXIT_UNTRUSTED_MODEL: UntrustedModel,
}

ALL_ERRORS = [ModelNotFound, InvalidModel, DockerUnavailable, ImageNotFound, RegistryUnavailable,
              GpuUnavailable, OutputNotWritable, StepFailed, VerificationFailed, TargetUnsupported,
              ToolchainBuildFailed, OutOfMemory, StepTimedOut, UntrustedModel, LockMismatch, Interrupted]
