"""Images for hosts with no registry: save, load, derive offline, and the wheels that derivation needs.

On a connected machine, `trtkit images save` writes an image and every toolchain image derived from it
into one tar, and `trtkit wheelhouse` downloads the pinned packages for a tag. On the air-gapped host,
`trtkit images load` brings the images back with the same ids; since a toolchain's tag is the base id plus
a hash of images/toolchain, builds there reuse it. Or `trtkit images derive --wheelhouse DIR` derives the
toolchain there, pip installing from those wheels only.
"""
import gzip
import importlib.util
import lzma
import re
import subprocess
import sys
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import IO

import docker
import docker.errors
import requests
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from .console import live_progress, show
from .docker_runner import DockerRunner, Limits, _daemon_errors, _show_pull_event, first_line
from .engine_api import streamed_get
from .errors import DockerUnavailable, ImageNotFound, OutputNotWritable, RegistryUnavailable, ToolchainBuildFailed
from .files import write_atomically
from .resources import toolchain_dir
from .toolchain import BASE_ID_LABEL, REPOSITORY, Toolchain, ensure_toolchain

CHUNK = 1 << 20
LOADED = re.compile(r"Loaded image(?: ID)?: (\S+)")
# The wheels NVIDIA's x86_64 images can install (the list of images/build.sh).
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux2010_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64", "any")
# pip's ways of saying it never reached the index.
UNREACHABLE = ("NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
               "Network is unreachable", "ProxyError", "SSLError", "ConnectTimeoutError")


@dataclass(frozen=True)
class ImageRef:
    reference: str
    image_id: str


# --- save -----------------------------------------------------------------------------------------

def save(runner: DockerRunner, references: list[str], path: Path, force: bool) -> list[ImageRef]:
    """The images and their toolchains in one `docker save` tar (shared layers stored once), compressed
    when path ends in .gz or .xz; written beside path and renamed over it only when complete."""
    if path.is_dir() or (path.exists() and not force):
        raise OutputNotWritable(f"{path} already exists" + ("" if path.is_dir() else ": pass --force to replace it"))
    images = with_toolchains(runner, references)
    _save_to(path, exported(runner, [image.reference for image in images]))
    return images


def with_toolchains(runner: DockerRunner, references: list[str]) -> list[ImageRef]:
    """Each named image, then every trtkit/toolchain image derived from it (labelled with its id)."""
    found: dict[str, str] = {}
    for reference in references:
        image = local_image(runner, reference)
        found.setdefault(reference, image.id)
        with _daemon_errors():
            toolchains = runner.client.images.list(filters={"label": f"{BASE_ID_LABEL}={image.id}"})
        for toolchain in toolchains:
            for tag in toolchain.tags:
                if tag.startswith(f"{REPOSITORY}:"):
                    found.setdefault(tag, toolchain.id)
    return [ImageRef(reference, image_id) for reference, image_id in found.items()]


def local_image(runner: DockerRunner, reference: str):
    """An image already on this host: saving never pulls."""
    try:
        with _daemon_errors():
            return runner.client.images.get(reference)
    except docker.errors.ImageNotFound:
        raise ImageNotFound(f"{reference} is not on this host",
                            hint="`docker image ls` lists the local images") from None
    except docker.errors.APIError as e:     # e.g. an invalid reference
        raise ImageNotFound(f"{reference}: {first_line(e.explanation or e)}") from None


def exported(runner: DockerRunner, names: list[str]) -> Iterator[bytes]:
    """The tar of `docker save NAME...`, its failures as trtkit errors (not OSError, which means the disk)."""
    api = runner.client.api
    try:
        with _daemon_errors():
            # One archive of all names (engine_api.py says why). No timeout: the daemon writes the whole
            # archive on its own disk before the first byte (minutes for 20 GB).
            with streamed_get(api, "/images/get", {"names": names}, None) as response:
                yield from response.iter_content(CHUNK)
    except docker.errors.NotFound as e:         # removed since we looked
        raise ImageNotFound(first_line(e.explanation or e)) from None
    except docker.errors.APIError as e:     # the daemon cannot export them, e.g. a layer missing from its store
        raise ImageNotFound(f"docker save failed: {first_line(e.explanation or e)}") from None
    except requests.exceptions.RequestException as e:   # e.g. the daemon went away mid-stream
        raise DockerUnavailable(f"lost the Docker daemon during the save: {first_line(e, 160)}") from None


def _save_to(path: Path, chunks: Iterable[bytes]) -> None:
    def write(raw) -> None:
        with compressed(path, raw) as f, transfer_progress() as progress:
            task = progress.add_task(f"saving {path.name}", total=None)
            for chunk in chunks:
                f.write(chunk)
                progress.advance(task, len(chunk))
    write_atomically(path, write)


def compressed(path: Path, raw: IO[bytes]):
    """gzip for FILE.gz, xz for FILE.xz (each at level 6, its tool's own default: 9 is much slower for little
    gain), else as is. xz is smaller and slower (one core): for archives that must fit a transfer limit."""
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)
    if path.suffix == ".xz":
        return lzma.LZMAFile(raw, mode="wb", preset=6)
    return nullcontext(raw)


def transfer_progress() -> Progress:
    """Bytes moved, live on stderr (console.live_progress says when)."""
    return live_progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())


# --- load -----------------------------------------------------------------------------------------

def load(runner: DockerRunner, path: Path) -> list[ImageRef]:
    """`docker load` of a tar, plain or compressed (the daemon decompresses); the images it brought."""
    with path.open("rb") as f, transfer_progress() as progress:
        upload = progress.add_task(f"loading {path.name}", total=path.stat().st_size)
        try:
            with _daemon_errors():
                # The daemon answers only once it has unpacked the whole upload, and load_image takes no
                # timeout: a client of the same daemon that never times out. Not quiet: its per-layer progress,
                # which comes only then, cannot stall the upload, and shows the layers being registered.
                events = docker.from_env(timeout=None).api.load_image(
                    read_chunks(f, lambda n: progress.advance(upload, n)), quiet=False)
                names = loaded_names(events, progress)
        except docker.errors.APIError as e:
            raise not_loaded(first_line(e.explanation or e)) from None
        except requests.exceptions.RequestException as e:   # e.g. the daemon went away mid-stream
            raise DockerUnavailable(f"lost the Docker daemon during the load: {first_line(e, 160)}") from None
    with _daemon_errors():
        return [ImageRef(name, runner.client.images.get(name).id) for name in names]


def not_loaded(reason: str) -> ImageNotFound:
    """The archive brought no image (not a tar of images, or cut off): exit 13, as for a missing image."""
    return ImageNotFound(f"docker load failed: {reason}",
                         hint="load an archive of `trtkit images save` or `docker save`")


def read_chunks(f: IO[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        advance(len(chunk))
        yield chunk


def loaded_names(events: Iterable[dict], progress: Progress) -> list[str]:
    """The references (or ids, for untagged images) the daemon reports as loaded."""
    layers: dict = {}
    names = []
    for event in events:
        if "error" in event:
            raise not_loaded(first_line(event["error"]))
        _show_pull_event(progress, layers, event)
        names += LOADED.findall(event.get("stream", ""))
    return names


# --- derive ---------------------------------------------------------------------------------------

def derive(runner: DockerRunner, reference: str, wheelhouse: Path | None) -> Toolchain:
    """The toolchain image of reference, derived (its output shown) or reused; nothing else is built."""
    limits = Limits(memory_bytes=runner.memory_total() * 3 // 4)     # for the probe, as a build's default
    return ensure_toolchain(runner, reference, limits, on_line=show_text_line, wheelhouse=wheelhouse)


def show_text_line(line: str) -> None:
    if line.strip():        # docker build sends blank lines between its steps
        show(line)


# --- wheelhouse -----------------------------------------------------------------------------------

def pinned_requirements(python: str) -> Path:
    return toolchain_dir() / "requirements" / f"py{python.replace('.', '')}.txt"


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def no_deps_names() -> tuple[str, ...]:
    """install_requirements.py's NO_DEPS, read from that file: download and install split the same way."""
    spec = importlib.util.spec_from_file_location("trtkit_install_requirements",
                                                  toolchain_dir() / "install_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.NO_DEPS)


def pip_target(python: str) -> list[str]:
    """pip download flags for CPython `python` on x86_64 Linux, binary wheels only."""
    version = python.replace(".", "")
    abis = [f"cp{version}"] + ([f"cp{version}m"] if int(python.split(".")[1]) < 8 else [])  # 3.6, 3.7: pymalloc ABI
    return ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            *(f"--abi={abi}" for abi in [*abis, "abi3", "none"]), *(f"--platform={p}" for p in PLATFORMS)]


def download_wheels(requirements: list[str], python: str, out: Path) -> list[Path]:
    """pip download of the requirements and their dependencies into out (files already there are kept)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputNotWritable(f"cannot make the wheelhouse folder {out}: {e.strerror or e}") from None
    no_deps = no_deps_names()
    without_deps = [r for r in requirements if r.startswith(no_deps)]
    with_deps = [r for r in requirements if r not in without_deps]
    for group, flags in ((with_deps, []), (without_deps, ["--no-deps"])):
        if group:
            pip_download(group, python, out, flags)
    # pip evaluates a dependency's markers against its own Python, not --python-version (pypa/pip#11010):
    # for 3.9, matplotlib's `importlib-resources; python_version < "3.10"` is left out. Fetch what is left
    # out (and its dependencies) until nothing is.
    asked: set[str] = set()
    while missed := [r for r in missed_requirements(out, python, no_deps) if r not in asked]:
        asked.update(missed)
        pip_download(missed, python, out, [])
    return sorted(out.glob("*.whl"))


def pip_download(requirements: list[str], python: str, out: Path, flags: list[str]) -> None:
    run_pip(["download", "--disable-pip-version-check", *pip_target(python), *flags, "-d", str(out), *requirements])


def marker_environment(python: str) -> dict[str, str]:
    """PEP 508 marker values of CPython `python` on x86_64 Linux (the images' platform)."""
    return {"python_version": python, "python_full_version": f"{python}.0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": "x86_64", "os_name": "posix", "extra": ""}


def missed_requirements(out: Path, python: str, no_deps: tuple[str, ...]) -> list[str]:
    """Requirements of out's wheels that `python` needs, by their markers, and no wheel in out provides
    (the wheels of no_deps are installed without theirs, so theirs are not looked at)."""
    wheels = {}
    for path in sorted(out.glob("*.whl")):
        try:
            wheels[canonicalize_name(parse_wheel_filename(path.name)[0])] = path
        except InvalidWheelFilename:
            continue
    environment = marker_environment(python)
    skipped = {canonicalize_name(name) for name in no_deps}
    missed = []
    for name, path in wheels.items():
        if name in skipped:
            continue
        for requirement in requires_dist(path):
            if (requirement.marker and requirement.marker.evaluate(environment)
                    and canonicalize_name(requirement.name) not in wheels):
                requirement.marker = None
                missed.append(str(requirement))
    return sorted(set(missed))


def requires_dist(wheel: Path) -> list[Requirement]:
    """The Requires-Dist headers of a wheel's METADATA (none when it cannot be read), folded ones whole."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            text = archive.read(name).decode("utf-8", "replace")
    except (OSError, zipfile.BadZipFile, StopIteration):
        return []
    found = []
    for value in HeaderParser().parsestr(text).get_all("Requires-Dist", []):
        try:
            found.append(Requirement(" ".join(value.split())))
        except InvalidRequirement:
            continue
    return found


def run_pip(arguments: list[str]) -> None:
    """The host's pip, its output shown as progress; a failure as one line."""
    tail: deque[str] = deque(maxlen=200)
    process = subprocess.Popen([sys.executable, "-m", "pip", *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout
    with process:
        for line in process.stdout:
            show(line.rstrip())
            tail.append(line.strip())
    if process.returncode == 0:
        return
    text = "\n".join(tail)
    if any(s in text for s in UNREACHABLE):
        raise RegistryUnavailable("pip download cannot reach the package index",
                                  hint="run `trtkit wheelhouse` on a machine with access to it")
    last = next((line for line in reversed(tail) if line.startswith("ERROR")), tail[-1] if tail else "")
    # The wheels a toolchain derivation installs cannot be had: exit 20, as when the derivation itself fails.
    raise ToolchainBuildFailed(f"pip download failed (exit {process.returncode}): {last}")
