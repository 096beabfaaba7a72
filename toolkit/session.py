"""The verbs behind the commands: build, inspect, bench, check. Each runs the in-container pipeline once.

    plan (toolkit/plan.py) -> session (daemon, limits, toolchain) -> one run (toolkit/pipeline_run.py) -> result

The commands only parse options and render what these return.
"""
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from trtkit_steps import contract, event_shapes

from . import build_cache, engine_check, lock, report, reproduce, triton
from . import manifest as manifest_module
from .console import show, warn
from .docker_runner import DockerRunner, Limits
from .errors import InvalidModel, StepFailed, TargetUnsupported
from .events import BenchResult, BuildRecord, EventStream
from .exported import MANIFEST_NAME, EarlierBuild, check_plain, manifest_field, read_earlier_build, read_manifest
from .manifest import Manifest
from .modelfile import safe_name
from .pipeline_run import Session, prove_gpus, run_pipeline
from .plan import BuildPlan
from .staging import Staging, protected_paths
from .targets import TargetChoice, choose_target, tensorrt_version, unused_options
from .toolchain import cache_dir, ensure_toolchain, image_as_is


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
            prove_gpus(session, plan)
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
    if not isinstance(bench, dict) or event_shapes.check_event({**bench, "event": "bench"}) is None:
        return None
    return folder, cast(BenchResult, bench)
