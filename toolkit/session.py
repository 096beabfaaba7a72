"""The verbs behind the commands: build, inspect, bench. Each runs the in-container pipeline once.

    plan (toolkit/plan.py) -> inputs tar -> Box (toolkit/docker_runner.py) -> events + artifacts back

The commands only parse options and render what these return.
"""
import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from trtkit_steps import contract

from . import build_cache, engine_check, lock, report, reproduce, triton
from . import manifest as manifest_module
from .console import show, warn
from .docker_runner import Box, DockerRunner, Limits, device_requests
from .errors import (
    STEP_EXIT_CODES,
    InvalidModel,
    OutOfMemory,
    StepFailed,
    StepTimedOut,
    TargetUnsupported,
    VerificationFailed,
)
from .events import BenchResult, BuildRecord, EventStream, StepDeadlines
from .exported import MANIFEST_NAME, EarlierBuild, check_plain, manifest_field, read_earlier_build, read_manifest
from .manifest import Manifest
from .modelfile import safe_name
from .plan import BuildPlan
from .staging import Staging, protected_paths
from .targets import TargetChoice, choose_target, tensorrt_version, unused_options
from .toolchain import Toolchain, cache_dir, ensure_toolchain, image_as_is
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
    runner: DockerRunner
    toolchain: Toolchain
    gpu_runtime: bool
    limits: Limits


def open_session(plan: BuildPlan) -> Session:
    return _session(plan.image, plan.memory, as_is=plan.model.format == contract.OUTPUT_FORMAT)


def _session(image: str, memory: int | None, as_is: bool = False) -> Session:
    """The daemon, the limits, and the image to run: the toolchain derived from image, or (as_is: only an
    engine is left to build, and TensorRT and numpy suffice) the image itself."""
    runner = DockerRunner.connect()
    limits = Limits(memory_bytes=memory or runner.memory_total() * 3 // 4)
    if as_is:
        toolchain = image_as_is(runner, image, limits)
    else:
        toolchain = ensure_toolchain(runner, image, limits, on_line=EventStream(BuildRecord()))
    return Session(runner, toolchain, runner.gpu_runtime(), limits)


def lock_image(reference: str, memory: int | None, path: Path) -> dict:
    """`trtkit lock`: the image's toolchain (derived once, as a build would) recorded in the lock file."""
    return lock.record(path, reference, _session(reference, memory).toolchain)["images"][reference]


@dataclass
class BuildOutcome:
    out_dir: Path
    manifest: Manifest


def build(plan: BuildPlan) -> BuildOutcome:
    started = time.time()
    earlier = _earlier_build(plan)
    reference = plan.image
    locked = lock.locked_entry(lock.read(plan.locked), plan.locked, reference) if plan.locked else None
    if locked is not None:   # the locked image, not whatever the tag names by now
        plan = dataclasses.replace(plan, image=_locked_image(reference, locked))
    out_dir = plan.out_dir or Path("trtkit-out") / safe_name(plan.model.name)
    protected = protected_paths(plan.model.path, cache_dir())
    with Staging(out_dir, plan.force, protected) as staging:
        session = open_session(plan)
        if locked is not None and plan.locked:
            lock.verify(locked, session.toolchain, plan.locked, reference,
                        image_only=plan.model.format == contract.OUTPUT_FORMAT)
        choice = choose_target(plan.target, plan.gpus, session.gpu_runtime, session.toolchain.probe,
                               plan.model.format)
        show(f"target: {choice.target} ({choice.reason})", style="bold")
        unused = unused_options(plan, choice.target)
        if unused:
            warn(f"{', '.join(unused)} shape{'s' if len(unused) == 1 else ''} only what TensorRT builds: this "
                 f"{choice.target} build does not use {'it' if len(unused) == 1 else 'them'}")
        triton_folder = triton.model_folder(plan.triton_repo, plan.model.name, choice.target, plan.force,
                                            protected) if plan.triton_repo else None
        build_key = build_cache.key(plan, choice.target, session.toolchain)
        finished = build_cache.find(build_key) if build_key and not plan.force else None
        if finished:
            _prove_gpus(session, plan)
            show(f"reusing the finished build {finished.name[:12]}: same model, data, image, toolchain and options "
                 "(--force rebuilds)", style="bold")
            with staging.writing():
                manifest = manifest_module.reused(cast(Manifest, build_cache.restore(finished, staging.result)),
                                                  plan, choice, staging.result, started)
                report.write_all(manifest, staging.result)
                reproduce.write(staging.result, plan, choice.target, session.toolchain, session.limits)
        else:
            manifest = _build_fresh(plan, session, choice, earlier, staging, started, build_key)
        published = staging.publish()
        # Copied under the lock: once it is released another build may replace --out.
        if build_key and not finished:
            build_cache.keep(published, build_key)
        if triton_folder:
            triton.write(triton_folder, published, manifest, plan.force)
            show(f"Triton model: {triton_folder}")
    return BuildOutcome(published, manifest)


def _prove_gpus(session: Session, plan: BuildPlan) -> None:
    """A reused build runs no pipeline, so a container that only starts asks for the GPUs a fresh build's would
    get: a --gpus this engine cannot serve fails as it does in a fresh build (GpuUnavailable, exit 15)."""
    gpus = device_requests(plan.gpus, session.gpu_runtime)
    if gpus:
        with session.runner.box(session.toolchain.tag, ["true"], session.limits, {}, gpus, "gpu-check") as box:
            box.run(lambda line: None)


def _locked_image(reference: str, locked: dict) -> str:
    """What a --locked build runs: the tag where it names the locked image here (the same id: a host that got it
    by `docker load` has no registry digest and may not reach the registry), else the locked digest."""
    if DockerRunner.connect().local_id(reference) == locked["id"]:
        return reference
    return lock.pinned_reference(reference, locked)


def _build_fresh(plan: BuildPlan, session: Session, choice: TargetChoice, earlier: EarlierBuild | None,
                 staging: Staging, started: float, build_key: str | None) -> Manifest:
    """The pipeline, then the manifest, the reports and reproduce.sh in the staged result."""
    extra = [(f"{contract.WORK}/{contract.ARTIFACTS}/{name}", path) for name, path in earlier.files.items()] \
        if earlier else []
    record = run_pipeline(session, plan, choice.target, "build", staging, extra,
                          json.dumps(earlier.names).encode() if earlier else None)
    if earlier:
        record.names = earlier.names
    with staging.writing():
        manifest = manifest_module.make(plan, choice, session.toolchain, record, staging.result, started,
                                        earlier.link() if earlier else None, build_key)
        report.write_all(manifest, staging.result)
        reproduce.write(staging.result, plan, choice.target, session.toolchain, session.limits)
    return manifest


def _earlier_build(plan: BuildPlan) -> EarlierBuild | None:
    """MODEL as an earlier trtkit output: checked before any container starts."""
    if plan.model.format != contract.OUTPUT_FORMAT:
        return None
    sample_data = plan.settings["sample_data"]
    if sample_data or plan.bench:
        raise TargetUnsupported(f"{'--sample-data' if sample_data else '--bench'} needs the Keras model: "
                                "an earlier output is verified against the reference it carries")
    return read_earlier_build(plan.model.path)


def inspect(plan: BuildPlan) -> BuildRecord:
    if plan.model.format not in contract.KERAS_FORMATS:
        raise TargetUnsupported(f"trtkit inspect reads Keras models; {plan.model.path} is already exported")
    return run_pipeline(open_session(plan), plan, "onnx", "inspect")


def bench_build(plan: BuildPlan, out_dir: Path, manifest: dict) -> BenchResult:
    """`trtkit bench OUT`: the artifacts OUT/trtkit.json lists, sent in under the same rules as they came out."""
    target = manifest_field(manifest, out_dir / MANIFEST_NAME, "target.chosen")
    if target not in contract.TARGETS:
        raise InvalidModel(f"{out_dir / MANIFEST_NAME} names no target trtkit builds ({target!r})")
    allowed = contract.allowed_artifacts(target, bench=True)
    extra = []
    for artifact in manifest_field(manifest, out_dir / MANIFEST_NAME, "artifacts", list):
        name = artifact.get("name") if isinstance(artifact, dict) else None
        if not isinstance(name, str) or name not in allowed:
            raise InvalidModel(f"{out_dir / MANIFEST_NAME} lists {name!r}, which is not an artifact of a "
                               f"{target} build")
        if name == contract.CHART:
            continue
        check_plain(out_dir / name, name in contract.FOLDER_ARTIFACTS)
        extra.append((f"{contract.WORK}/{contract.ARTIFACTS}/{name}", out_dir / name))
    names = json.dumps(manifest["names"]).encode()
    record = run_pipeline(open_session(plan), plan, target, "bench", extra=extra, io_json=names)
    if record.bench is None:
        raise StepFailed("the bench finished without its results")
    return record.bench


@dataclass
class CheckOutcome:
    built: engine_check.EngineRecord
    here: engine_check.EngineRecord
    verdict: str


def check(plan: BuildPlan, out_dir: Path, manifest: dict) -> CheckOutcome:
    """`trtkit check OUT`: the image's TensorRT first (no GPU needed), then a deserialization on the GPU."""
    built = engine_check.recorded(out_dir, manifest)
    session = open_session(plan)
    probe = session.toolchain.probe
    hint = engine_check.rebuild_hint(out_dir, manifest, plan.image)
    mismatch = engine_check.version_mismatch(built, tensorrt_version(probe))
    if mismatch:
        raise TargetUnsupported(f"the engine cannot load in {plan.image}: {mismatch}", hint=hint)
    choose_target("engine", plan.gpus, session.gpu_runtime, probe, contract.OUTPUT_FORMAT)   # a GPU, or exit 15
    record = run_pipeline(session, plan, "engine", "check",
                          extra=[(f"{contract.WORK}/{contract.ARTIFACTS}/model.plan", out_dir / "model.plan")])
    found = record.engine_check
    if found is None:
        raise StepFailed("the check finished without its findings")
    here = engine_check.EngineRecord(found["tensorrt"], found["gpu"], found["compute_capability"])
    try:
        return CheckOutcome(built, here, engine_check.verdict(built, here, None if found["loadable"] else
                                                              str(found.get("error"))))
    except TargetUnsupported as e:
        e.hint = hint
        raise


def earlier_bench(manifest: dict) -> tuple[Path, BenchResult] | None:
    """A two-stage output's first build timed Keras and ONNX Runtime where they were (often a CPU host):
    those rows, with their own device; never divided by the GPU's."""
    link = manifest.get("earlier_build")
    if not isinstance(link, dict) or not isinstance(link.get("path"), str):
        return None
    folder = Path(link["path"])
    try:
        earlier, _ = read_manifest(folder / MANIFEST_NAME)
    except InvalidModel:
        return None      # moved or gone since: nothing stored to show
    bench = earlier.get("bench")
    if not isinstance(bench, dict) or contract.check_event({**bench, "event": "bench"}) is None:
        return None
    return folder, cast(BenchResult, bench)


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
