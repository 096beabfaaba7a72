"""The Docker SDK, wrapped: connect, pull with progress, build images, run boxed containers.

A build container is a box: nothing of the host is mounted. Its only writable
places are one anonymous volume at contract.ROOT, which the host fills with
put_archive and reads back with get_archive, and a sized tmpfs at /tmp. It runs
as an unprivileged uid with no capabilities, no network, no new privileges, a
read-only root file system, and limits on memory, processes and logs. Every
container carries labels naming the run and the process that started it, so
`trtkit doctor --clean` can tell a crashed build's leftovers from a running one.
"""
import io
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import docker
import docker.errors
import docker.types
import requests
import urllib3.exceptions
from docker.models.containers import Container
from docker.utils import parse_repository_tag
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from trtkit_steps import contract

from .console import live_progress, show, warn
from .engine_api import streamed_get
from .errors import (
    DockerUnavailable,
    GpuUnavailable,
    ImageNotFound,
    RegistryUnavailable,
    ToolchainBuildFailed,
    TrtkitError,
)

LABEL = "org.trtkit"
RUN_LABEL, PID_LABEL, START_LABEL, HOST_LABEL = (f"{LABEL}.{k}" for k in ("run", "pid", "pid-start", "host"))
CONTAINER_USER = "65534:65534"          # nobody: never root, whoever runs trtkit
GPU_DRIVER_ERROR = 'could not select device driver'
NGC_LOGIN_HINT = "run `docker login nvcr.io` with user `$oauthtoken` and an NGC API key as password"
# The daemon vanishing (or not answering within the client's timeout) shows up as any of these, depending on
# where the SDK was (mid-stream, requests says ChunkedEncodingError).
CONNECTION_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                     requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError, ConnectionError)


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    tmp_bytes: int = 2 << 30
    pids: int = 4096
    log_bytes: int = 50 << 20


def classify_pull_error(reference: str, message: str) -> TrtkitError:
    """Turn a registry error into the one-line error a user can act on."""
    text = message.lower()
    registry = reference.split("/")[0] if "/" in reference and "." in reference.split("/")[0] else "docker.io"
    if any(s in text for s in ("unauthorized", "authentication required", "denied", "no basic auth")):
        hint = NGC_LOGIN_HINT if registry == "nvcr.io" else f"run `docker login {registry}`"
        return RegistryUnavailable(f"not allowed to pull {reference}: not logged in to {registry}", hint=hint)
    if any(s in text for s in ("manifest unknown", "not found", "does not exist")):
        return ImageNotFound(f"{reference} does not exist in {registry}: unknown tag or repository",
                             hint="see the tags in the README, or `docker image ls` for local images")
    if any(s in text for s in ("no such host", "dial tcp", "connection refused", "timeout", "network is unreachable",
                               "tls handshake")):
        return RegistryUnavailable(f"cannot pull {reference}: registry {registry} is unreachable "
                                   f"and the image is not present locally",
                                   hint="check the network, or load the image with `docker load`")
    return RegistryUnavailable(f"cannot pull {reference}: {first_line(message)}")


def first_line(text: object, limit: int = 300) -> str:
    """The first non-empty line of an error message, shortened; never fails on empty text."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")[:limit]


def device_requests(gpus, available: bool) -> list[docker.types.DeviceRequest]:
    """What --gpus asks Docker for; auto means all GPUs where the NVIDIA runtime is registered."""
    if gpus.mode == "none" or (gpus.mode == "auto" and not available):
        return []
    if gpus.mode == "ids":
        return [docker.types.DeviceRequest(device_ids=list(gpus.ids), capabilities=[["gpu"]])]
    return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (survives pid reuse checks), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def run_labels(kind: str) -> dict:
    """A fresh run id per container, and the process that owns it."""
    pid = os.getpid()
    return {LABEL: kind, RUN_LABEL: uuid.uuid4().hex, PID_LABEL: str(pid), START_LABEL: process_start(pid) or "",
            HOST_LABEL: socket.gethostname()}


def owner_is_gone(labels: dict) -> bool:
    """True when the trtkit process that made a container (on this host) no longer runs."""
    if labels.get(HOST_LABEL) != socket.gethostname() or not labels.get(PID_LABEL, "").isdigit():
        return False
    return process_start(int(labels[PID_LABEL])) != labels.get(START_LABEL)


class DockerRunner:
    def __init__(self, client: docker.DockerClient):
        self.client = client

    @classmethod
    def connect(cls) -> "DockerRunner":
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        try:
            client = docker.from_env()
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise DockerUnavailable(
                f"cannot reach the Docker daemon at {host}: {first_line(e, 200)}",
                hint="start it (`sudo systemctl start docker`, or `dockerd &`) or set DOCKER_HOST") from None
        return cls(client)

    @cached_property
    def info(self) -> dict:
        """The daemon's `docker info`, asked once per runner."""
        return self.client.info()

    def gpu_runtime(self) -> bool:
        """Whether this engine can give containers GPUs (the NVIDIA runtime is registered)."""
        return "nvidia" in (self.info.get("Runtimes") or {})

    def memory_total(self) -> int:
        return int(self.info.get("MemTotal") or 0)

    def image(self, reference: str):
        """The local image, pulled (with live progress) when missing."""
        try:
            return self.client.images.get(reference)
        except docker.errors.ImageNotFound:
            self._pull(reference)
            return self.client.images.get(reference)
        except docker.errors.APIError as e:   # e.g. an invalid reference
            raise ImageNotFound(f"{reference}: {first_line(e.explanation or e)}") from None

    def local_id(self, reference: str) -> str | None:
        """The id of the image reference names here, without pulling; None where there is none."""
        try:
            return self.client.images.get(reference).id
        except docker.errors.APIError:   # ImageNotFound, or a reference the daemon refuses
            return None

    def _pull(self, reference: str) -> None:
        repository, tag = parse_repository_tag(reference)
        with live_progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn()) as progress:
            layers: dict[str, TaskID] = {}
            try:
                for event in self.client.api.pull(repository, tag=tag, stream=True, decode=True):
                    if "error" in event:
                        raise classify_pull_error(reference, event["error"])
                    _show_pull_event(progress, layers, event)
            except docker.errors.APIError as e:
                raise classify_pull_error(reference, str(e.explanation or e)) from None
        show(f"pulled {reference}")

    def build_image(self, context: bytes, tag: str, buildargs: dict, labels: dict,
                    on_line: Callable[[str], None]):
        """docker build from an in-memory context, its output streamed line by line."""
        try:
            for event in self.client.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag,
                                               buildargs=buildargs, labels=labels, rm=True, forcerm=True,
                                               pull=False, decode=True):
                if "error" in event:
                    raise ToolchainBuildFailed(f"building {tag} failed: {first_line(event['error'])}")
                for line in event.get("stream", "").splitlines():
                    on_line(line)
        except docker.errors.APIError as e:
            raise ToolchainBuildFailed(f"building {tag} failed: {first_line(e.explanation or e)}") from None
        return self.client.images.get(tag)

    def box(self, image: str, command: list[str], limits: Limits, environment: dict, gpus: list,
            kind: str = "build") -> "Box":
        return Box(self, image, command, limits, environment, gpus, kind)

    def leftover_containers(self) -> list:
        return self.client.containers.list(all=True, filters={"label": LABEL})


class Box:
    """One hardened container, used as a context manager: create, put, run, fetch, removed on exit.

    Removal also finds the container by this run's label, so a signal that lands
    between create and the assignment leaves nothing behind either.
    """

    def __init__(self, runner: DockerRunner, image: str, command: list[str], limits: Limits, environment: dict,
                 gpus: list, kind: str):
        self.runner, self.gpus, self.limits = runner, gpus, limits
        self.labels = run_labels(kind)
        self.spec = dict(
            image=image, command=command, environment=environment, user=CONTAINER_USER, labels=self.labels,
            mounts=[docker.types.Mount(target=contract.ROOT, source=None, type="volume")],
            read_only=True, tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_bytes},mode=1777"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], network_mode="none", init=True,
            pids_limit=limits.pids, mem_limit=limits.memory_bytes, memswap_limit=limits.memory_bytes,
            log_config=docker.types.LogConfig(type="json-file",
                                              config={"max-size": str(limits.log_bytes), "max-file": "1"}),
            device_requests=gpus or None, detach=True)
        self._container: Container | None = None
        self.expired: str | None = None       # the step a deadline killed
        self._timer: threading.Timer | None = None

    @property
    def container(self) -> Container:
        assert self._container is not None, "a Box is used as a context manager"
        return self._container

    def __enter__(self) -> "Box":
        try:
            with _daemon_errors():
                self._container = self.runner.client.containers.create(**self.spec)
        except BaseException:
            self.__exit__()      # a signal may land after the daemon made it: find it by its label
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.disarm()
        try:
            run = f"{RUN_LABEL}={self.labels[RUN_LABEL]}"
            for container in self.runner.client.containers.list(all=True, filters={"label": run}):
                container.remove(force=True, v=True)
        except (docker.errors.DockerException, requests.RequestException, *CONNECTION_ERRORS) as e:
            warn(f"could not remove the build container ({first_line(e, 120)}); "
                 "`trtkit doctor --clean` removes it once the daemon is back")

    def put(self, archive) -> None:
        """Unpack a tar (bytes or a file object) at contract.ROOT, before the container starts."""
        with _daemon_errors():
            self.container.put_archive(contract.ROOT, archive)

    def fetch(self, path: str) -> "Archive | None":
        """A tar stream of one path in the container, or None when it is not there. The SDK's get_archive
        gives no way to close its stream, so this is the request it makes (engine_api.py), keeping the response."""
        api = self.runner.client.api
        try:
            with _daemon_errors():
                response = streamed_get(api, f"/containers/{self.container.id}/archive", {"path": path},
                                        api.timeout)
        except docker.errors.NotFound:
            return None
        return Archive(response)

    def run(self, on_output: Callable[[str], None]) -> int:
        """Start, relay output lines until the container ends; its exit code."""
        with _daemon_errors():
            self._start()
            for line in _lines(self.container.logs(stream=True, follow=True), contract.MAX_LINE_BYTES):
                on_output(line)
            return self.container.wait()["StatusCode"]

    def out_of_memory(self) -> bool:
        with _daemon_errors():
            self.container.reload()
        return bool(self.container.attrs["State"].get("OOMKilled"))

    def deadline(self, seconds: float, what: str) -> None:
        """Kill the container unless deadline() is called again within `seconds`."""
        self.disarm()
        self._timer = threading.Timer(seconds, self._expire, [what])
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self, what: str) -> None:
        self.expired = what
        try:
            self.container.kill()
        except (docker.errors.DockerException, *CONNECTION_ERRORS):
            pass    # already gone: the wait reports how it ended

    def _start(self) -> None:
        try:
            self.container.start()
        except docker.errors.APIError as e:
            if GPU_DRIVER_ERROR in str(e) and self.gpus:
                raise GpuUnavailable(
                    "this Docker engine cannot give containers a GPU (no NVIDIA runtime: "
                    f"{GPU_DRIVER_ERROR} \"\" with capabilities [[gpu]])",
                    hint="install the NVIDIA Container Toolkit and restart dockerd, or use --gpus none") from None
            raise


@contextmanager
def _daemon_errors():
    """The daemon going away mid-run becomes DockerUnavailable (exit 12), not a traceback."""
    try:
        yield
    except CONNECTION_ERRORS as e:
        raise DockerUnavailable(f"lost the Docker daemon during the build: {first_line(e, 160)}",
                                hint="restart dockerd and build again") from None


class Archive:
    """A get_archive stream: its bytes, and close() to hang up, read to the end, in part or not at all. Close
    it (receive does): left open, the daemon keeps copying into it, the container stays busy, and its removal
    waits for the API timeout and fails."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.chunks = response.iter_content(1 << 20)

    def __iter__(self) -> "Archive":
        return self

    def __next__(self) -> bytes:
        with _daemon_errors():
            chunk = next(self.chunks, None)
        if chunk is None:
            raise StopIteration
        return chunk

    def close(self) -> None:
        self.response.close()


def _show_pull_event(progress: Progress, layers: dict, event: dict) -> None:
    layer, status = event.get("id"), event.get("status", "")
    if not layer or layer == event.get("status"):
        return
    if layer not in layers:
        layers[layer] = progress.add_task(f"{layer} {status}", total=None)
    detail = event.get("progressDetail") or {}
    progress.update(layers[layer], description=f"{layer} {status}", total=detail.get("total"),
                    completed=detail.get("current", 0))
    if status in ("Pull complete", "Already exists", "Download complete"):
        progress.update(layers[layer], total=1, completed=1)


def _lines(chunks: Iterable[bytes], limit: int):
    """Whole lines from byte chunks that may split lines anywhere; a line longer than limit is cut
    there (the rest of it dropped), so a container printing without newlines cannot fill memory."""
    buffer, dropping = b"", False
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if not dropping:
                yield line.decode("utf-8", "replace")
            dropping = False
        if len(buffer) > limit:
            if not dropping:
                yield buffer[:limit].decode("utf-8", "replace") + " [line cut]"
            buffer, dropping = b"", True
    if buffer and not dropping:
        yield buffer.decode("utf-8", "replace")
