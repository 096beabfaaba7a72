"""trtkit doctor: is this machine ready to build? Each missing piece with its fix."""
import shutil
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..console import out, user_errors
from ..docker_runner import PID_LABEL, DockerRunner, Limits, device_requests, owner_is_gone
from ..errors import GpuUnavailable
from ..plan import GpuRequest
from ..toolchain import REPOSITORY, cache_dir

MIN_FREE_GB = 20  # a TensorRT tag and its toolchain image take 10-15 GB


@user_errors
def doctor(
    clean: Annotated[bool, typer.Option("--clean", help="Remove containers left by trtkit runs that no longer exist "
                                        "(never another user's running build).")] = False,
) -> None:
    """Check the Docker daemon, the NVIDIA runtime, disk space and trtkit's images."""
    checks = []   # (what, ok, detail, fix)
    runner = DockerRunner.connect()   # unreachable daemon: one-line error, exit 12
    version = runner.client.version()
    checks.append(("Docker daemon", True, f"{version.get('Version')} (API {version.get('ApiVersion')})", ""))
    gpu = runner.gpu_runtime()
    checks.append(("NVIDIA runtime", gpu, "registered: containers can get GPUs" if gpu else "not registered: CPU targets only",
                   "" if gpu else "install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker`, restart dockerd"))
    if gpu:
        checks.append(_gpu_in_a_container(runner))
    free_gb = shutil.disk_usage(cache_dir()).free / 1e9
    checks.append(("Free disk", free_gb >= MIN_FREE_GB, f"{free_gb:.0f} GB free at {cache_dir()}",
                   "" if free_gb >= MIN_FREE_GB else f"free at least {MIN_FREE_GB} GB (`docker system prune`)"))
    images = [t for i in runner.client.images.list() for t in i.tags
              if t.startswith(("nvcr.io/nvidia/tensorrt:", "trtkit/"))]
    toolchains = [t for t in images if t.startswith(REPOSITORY)]
    checks.append(("Images", bool(images), ", ".join(sorted(images)) or "none yet",
                   "" if images else "the first `trtkit build` pulls its tag (`docker login nvcr.io` first)"))
    checks.append(("Toolchain images", True, f"{len(toolchains)} derived (reused by later builds)", ""))
    checks.append(_leftovers(runner, clean))
    table = Table(title="trtkit doctor", title_justify="left")
    for header in ("check", "", "state", "fix"):
        table.add_column(header, overflow="fold")
    for what, ok, detail, fix in checks:
        table.add_row(what, "[green]ok[/]" if ok else "[yellow]![/]", Text(detail), Text(fix))
    out.print(table)


# Lists the GPUs the container got: the driver's nvidia-smi where the runtime mounts it, else the device nodes.
GPU_PROBE = ["sh", "-c", "PATH=/usr/local/nvidia/bin:$PATH; nvidia-smi -L 2>/dev/null || ls /dev/nvidia[0-9]*"]


def _gpu_in_a_container(runner: DockerRunner) -> tuple:
    """A registered runtime is not a working GPU: start a tiny container with --gpus all and look."""
    tags = sorted(tag for image in runner.client.images.list() for tag in image.tags)
    local = [t for t in tags if t.startswith(("nvcr.io/nvidia/tensorrt:", "trtkit/tensorrt:"))] + \
            [t for t in tags if t.startswith("trtkit/")]     # any image with a shell will do
    if not local:
        return ("GPU in a container", False, "not checked: no TensorRT or trtkit image here yet",
                "run it again after the first `trtkit build --gpus all`")
    lines: list[str] = []
    limits = Limits(memory_bytes=256 << 20, tmp_bytes=1 << 20)
    try:
        with runner.box(local[0], GPU_PROBE, limits, {}, device_requests(GpuRequest("all"), True), "doctor") as box:
            code = box.run(lines.append)
    except GpuUnavailable as e:
        return ("GPU in a container", False, e.message, e.hint or "")
    seen = [line.strip() for line in lines if line.strip().startswith(("GPU ", "/dev/nvidia"))]
    if code != 0 or not seen:
        return ("GPU in a container", False, f"{local[0]} with --gpus all saw no GPU (exit {code})",
                "check the NVIDIA driver (`nvidia-smi` on the host) and the container toolkit's logs")
    return ("GPU in a container", True, f"{'; '.join(seen)} (in {local[0]})", "")


def _leftovers(runner: DockerRunner, clean: bool) -> tuple:
    """Containers of trtkit runs whose process is gone are leftovers; the others belong to running builds."""
    containers = runner.leftover_containers()
    orphans = [c for c in containers if owner_is_gone(c.labels)]
    running = [f"{c.short_id} (pid {c.labels.get(PID_LABEL, '?')})" for c in containers if c not in orphans]
    if clean:
        for container in orphans:
            container.remove(force=True, v=True)
    detail = (f"{len(orphans)} left by ended runs" + (" (removed)" if clean and orphans else "") +
              (f"; {len(running)} of running builds or other hosts: {', '.join(running)}" if running else ""))
    return ("Leftover containers", not orphans or clean, detail,
            "" if not orphans or clean else "trtkit doctor --clean")
