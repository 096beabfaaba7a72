"""One run of scripts/pipeline.py in a box: the protocol every verb of session.py follows.

    inputs tar (model, data, scripts, plan.json) -> Box.put -> start, events relayed until the container ends
    -> its exit read (timeout, OOM, the steps' own error) -> TensorRT caches, evidence and artifacts fetched

Nothing the container sends back is trusted: what it may return is the contract's, received through transfer.py.
"""
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trtkit_steps import contract

from .console import warn
from .docker_runner import Box, DockerRunner, Limits, device_requests
from .errors import STEP_EXIT_CODES, OutOfMemory, StepFailed, StepTimedOut, VerificationFailed
from .events import BuildRecord, EventStream, StepDeadlines
from .modelfile import safe_name
from .plan import BuildPlan
from .staging import Staging
from .toolchain import Toolchain, cache_dir
from .transfer import WRITABLE, Inputs, artifact_rule, cache_not_writable, plain_files, receive

CONTAINER_ENV = {
    "HOME": "/tmp",                 # the container's uid has no home; /tmp is its tmpfs
    "MPLCONFIGDIR": "/tmp",
    "PYTHONUNBUFFERED": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONDONTWRITEBYTECODE": "1",  # the scripts are read-only
}
MAX_ARTIFACT_BYTES = 16 << 30


@dataclass
class Session:
    """What each run needs: the daemon, the image to run, whether it can give GPUs, the box's limits."""
    runner: DockerRunner
    toolchain: Toolchain
    gpu_runtime: bool
    limits: Limits


def prove_gpus(session: Session, plan: BuildPlan) -> None:
    """A reused build runs no pipeline, so a container that only starts asks for the GPUs a fresh build's would
    get: a --gpus this engine cannot serve fails as it does in a fresh build (GpuUnavailable, exit 15)."""
    gpus = device_requests(plan.gpus, session.gpu_runtime)
    if gpus:
        with session.runner.box(session.toolchain.tag, ["true"], session.limits, {}, gpus, "gpu-check") as box:
            box.run(lambda line: None)


def run_pipeline(session: Session, plan: BuildPlan, target: str, mode: str, staging: Staging | None = None,
                 extra: Sequence[tuple[str, Path]] = (), io_json: bytes | None = None) -> BuildRecord:
    """One boxed container runs scripts/pipeline.py; events fill the record, artifacts land in staging."""
    inputs = _inputs(plan, target, mode, extra, io_json)
    command = ["python3", f"{contract.SCRIPTS}/pipeline.py", f"{contract.WORK}/{contract.PLAN}"]
    gpus = device_requests(plan.gpus, session.gpu_runtime)
    record = BuildRecord()
    with session.runner.box(session.toolchain.tag, command, session.limits, CONTAINER_ENV, gpus) as box:
        with inputs.finish() as archive:
            box.put(archive)
        deadlines = StepDeadlines(plan.timeout, contract.steps(plan.container_plan(target, mode)), box.deadline)
        deadlines.start("start-up")
        code = box.run(EventStream(record, on_step=deadlines.step))
        box.disarm()
        _receive_cache(box, plan)
        error = exit_error(code, record, box.expired, code != 0 and box.out_of_memory(), plan, session.limits)
        if isinstance(error, VerificationFailed):
            error.message += f"; {_keep_evidence(box, plan)}"
        if error:
            raise error
        if staging is not None:
            with staging.writing() as dest:
                _receive_artifacts(box, dest, target, plan, record)
    return record


def _inputs(plan: BuildPlan, target: str, mode: str, extra, io_json: bytes | None) -> Inputs:
    inputs = Inputs(cache_dir())
    inputs.scripts()
    inputs.folder(contract.MODEL_DIR)
    if plan.model.format != contract.OUTPUT_FORMAT:     # an earlier output's files come as extra
        inputs.path(contract.model_path(plan.model.format, plan.model.path.name), plan.model.path)
    inputs.folder(contract.DATA_DIR)
    for container_path, host_path in plan.data_files().values():
        inputs.path(container_path, host_path)
    work = contract.WORK
    for folder in (work, f"{work}/{contract.ARTIFACTS}", f"{work}/{contract.CACHE}"):
        inputs.folder(folder, WRITABLE)
    inputs.data(f"{work}/{contract.PLAN}", json.dumps(plan.container_plan(target, mode), indent=2).encode())
    if io_json is not None:
        inputs.data(f"{work}/{contract.IO}", io_json)
    for container_path, host_path in extra:
        inputs.path(container_path, host_path)
    for entry in _cache_entries(plan):
        inputs.path(f"{work}/{contract.CACHE}/{entry.name}", entry)
    return inputs


def _model_cache(plan: BuildPlan) -> Path:
    """TensorRT caches are kept per model: one model's container can never write another's."""
    return cache_dir() / "tensorrt" / plan.model.sha256[:32]


def _cache_entries(plan: BuildPlan) -> list[Path]:
    folder = _model_cache(plan)
    return [p for p in sorted(folder.iterdir()) if contract.CACHE_FILE.match(p.name) and p.is_file()
            and not p.is_symlink() and p.stat().st_size <= contract.MAX_CACHE_FILE_BYTES] if folder.is_dir() else []


def _receive_cache(box: Box, plan: BuildPlan) -> None:
    """receive() makes the model's folder with its first file: never an empty one to remove, which a build of
    the same model running beside this one (a matrix) may be writing into. Entries are whole or absent, so a
    cache that cannot be written (a full disk) costs only the next build's timing: a warning, not a failure."""
    rule = plain_files(lambda name: bool(contract.CACHE_FILE.match(name)), contract.MAX_CACHE_FILE_BYTES)
    stream = box.fetch(f"{contract.WORK}/{contract.CACHE}")    # the daemon's errors are not the disk's
    try:
        receive(stream, _model_cache(plan), rule, 64 * contract.MAX_CACHE_FILE_BYTES, "cache files", replace=True)
    except OSError as e:
        warn(f"the TensorRT caches were not kept: {cache_not_writable(_model_cache(plan), e).message}")


def exit_error(code: int, record: BuildRecord, expired: str | None, oom: bool, plan: BuildPlan,
               limits: Limits):
    """The error a finished container amounts to, or None: timeouts and OOM first, then the steps' own word."""
    if expired:
        return StepTimedOut(f"step {expired} did not finish within {plan.timeout:g} s: the container was stopped",
                            hint="raise --timeout if the step needs longer")
    if oom:
        return OutOfMemory(f"the build ran out of memory (limit {limits.memory_bytes / 2**30:.1f} GiB): "
                           "the container was stopped", hint="raise --memory, or build on a larger machine")
    if code == 0:
        return None if record.finished else StepFailed(
            "the build container exited without finishing its steps (no final event)")
    error_type = STEP_EXIT_CODES.get(code, StepFailed)
    if record.error:
        return error_type(record.error["message"])
    tail = " | ".join(line.strip() for line in list(record.log_tail)[-3:] if line.strip())
    return error_type(f"the build container exited with code {code}: {tail[-400:]}")


def _keep_evidence(box: Box, plan: BuildPlan) -> str:
    """A failed verification's inputs and outputs go to a new folder in the cache, not to --out; what became
    of them, for the error. Evidence that cannot be written (a full disk) is left out whole, and the
    verification's failure stays the error."""
    failures = cache_dir() / "failures"
    stream = box.fetch(f"{contract.WORK}/{contract.EVIDENCE}")    # the daemon's errors are not the disk's
    folder = None
    try:
        failures.mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{safe_name(plan.model.name)}-{time.strftime('%Y%m%d-%H%M%S')}-",
                                       dir=failures))
        rule = plain_files(lambda name: name in contract.EVIDENCE_FILES, contract.MAX_EVIDENCE_FILE_BYTES)
        receive(stream, folder, rule, len(contract.EVIDENCE_FILES) * contract.MAX_EVIDENCE_FILE_BYTES + (1 << 20),
                "evidence")
    except BaseException as e:
        if stream is not None:
            stream.close()      # receive closes it, but it may not have got that far
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, OSError):
            return f"no evidence kept: {cache_not_writable(failures, e).message}"
        raise
    return f"evidence kept in {folder}"


def _receive_artifacts(box: Box, dest: Path, target: str, plan: BuildPlan, record: BuildRecord) -> None:
    allowed = contract.allowed_artifacts(target, bench=bool(plan.bench))
    taken = receive(box.fetch(f"{contract.WORK}/{contract.ARTIFACTS}"), dest, artifact_rule(allowed),
                    MAX_ARTIFACT_BYTES, "artifacts")
    present = {Path(p).parts[0] for p in taken}
    missing = [name for name in contract.TARGET_ARTIFACTS[target][0] if name not in present]
    if missing:
        raise StepFailed(f"the build finished without its artifact(s) {', '.join(missing)}")
    described = {a["name"]: a for a in record.artifacts}
    record.artifacts = [{**described.get(name, {}), "name": name, "kind": contract.ARTIFACT_KINDS[name]}
                        for name in allowed if name in present]
