"""Plan -> Docker: derive the toolchain, run the in-container pipeline, publish.

The commands (build, inspect, bench) share these pieces; each adds only what
it shows the user.
"""
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from toolkit import manifest as manifest_module
from toolkit import report
from toolkit.console import err
from toolkit.docker_runner import DockerRunner
from toolkit.errors import STEP_EXIT_CODES, StepFailed, VerificationFailed
from toolkit.events import BuildRecord, EventStream
from toolkit.plan import CACHE_MOUNT, MODEL_MOUNT, SCRIPTS_MOUNT, WORK_MOUNT, BuildPlan, choose_target
from toolkit.resources import scripts_dir
from toolkit.staging import Staging
from toolkit.toolchain import Toolchain, cache_dir, ensure_toolchain

CONTAINER_ENV = {
    "HOME": "/tmp",                 # the host uid has no home in the image
    "MPLCONFIGDIR": "/tmp",
    "PYTHONUNBUFFERED": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONDONTWRITEBYTECODE": "1",  # the scripts are mounted read-only
}


@dataclass
class Session:
    runner: DockerRunner
    toolchain: Toolchain
    gpu_runtime: bool


def open_session(plan: BuildPlan) -> Session:
    runner = DockerRunner.connect()
    toolchain = ensure_toolchain(runner, plan.image, on_line=EventStream(BuildRecord()))
    return Session(runner, toolchain, runner.gpu_runtime())


def run_pipeline(session: Session, plan: BuildPlan, target: str, work: Path,
                 mode: str = "build") -> BuildRecord:
    """One container runs scripts/pipeline.py on plan.json; its events fill the record."""
    (work / "plan.json").write_text(json.dumps(plan.container_plan(target, mode), indent=2))
    trt_cache = cache_dir() / "tensorrt"
    trt_cache.mkdir(exist_ok=True)
    volumes = {
        str(scripts_dir()): {"bind": SCRIPTS_MOUNT, "mode": "ro"},
        str(plan.model.folder): {"bind": MODEL_MOUNT, "mode": "ro"},
        str(work): {"bind": WORK_MOUNT, "mode": "rw"},
        str(trt_cache): {"bind": CACHE_MOUNT, "mode": "rw"},
    }
    volumes.update({str(host): {"bind": inside, "mode": "ro"} for inside, host in plan.data_mounts().values()})
    record = BuildRecord()
    code = session.runner.run(
        session.toolchain.tag, ["python3", f"{SCRIPTS_MOUNT}/pipeline.py", f"{WORK_MOUNT}/plan.json"],
        volumes=volumes, device_requests=plan.gpus.device_requests(session.gpu_runtime),
        environment=CONTAINER_ENV, on_output=EventStream(record))
    if code != 0:
        raise _step_error(code, record)
    return record


@contextmanager
def scratch_work():
    """A work folder for runs that publish nothing (inspect, bench of a build), removed after."""
    with tempfile.TemporaryDirectory(dir=cache_dir()) as folder:
        work = Path(folder)
        (work / "artifacts").mkdir()
        yield work


def _step_error(code: int, record: BuildRecord):
    error_type = STEP_EXIT_CODES.get(code, StepFailed)
    if record.error:
        return error_type(record.error["message"])
    tail = " | ".join(line.strip() for line in list(record.log_tail)[-3:] if line.strip())
    return error_type(f"the build container exited with code {code}: {tail[-400:]}")


@dataclass
class BuildOutcome:
    out_dir: Path
    manifest: dict


def build(plan: BuildPlan) -> BuildOutcome:
    started = time.time()
    with Staging(plan.out_dir) as staging:   # checks --out before any container work
        session = open_session(plan)
        choice = choose_target(plan.target, plan.gpus, session.gpu_runtime, session.toolchain.probe)
        err.print(f"target: [bold]{choice.target}[/] ({choice.reason})", markup=True)
        try:
            record = run_pipeline(session, plan, choice.target, staging.work)
        except VerificationFailed as e:
            raise VerificationFailed(f"{e.message}; evidence kept in {_keep_evidence(plan, staging.work)}") from None
        for artifact in record.artifacts:
            shutil.move(str(staging.work / "artifacts" / artifact["name"]), str(staging.result / artifact["name"]))
        manifest = manifest_module.make(plan, choice, session.toolchain, record, staging.result, started)
        report.write_all(manifest, staging.result)
        return BuildOutcome(staging.publish(), manifest)


def _keep_evidence(plan: BuildPlan, work: Path) -> Path:
    """A failed verification's inputs and outputs go to the cache, not to --out."""
    folder = cache_dir() / "failures" / f"{plan.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    shutil.copytree(work, folder, ignore=shutil.ignore_patterns("artifacts"))
    return folder
