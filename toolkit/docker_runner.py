"""The Docker SDK, wrapped: connect, pull with progress, build, run one container.

Every container trtkit starts is removed in a `finally`, Ctrl-C included, and
carries the label org.trtkit so leftovers can be found (`trtkit doctor`).
"""
import io
import os
from collections.abc import Callable, Iterable

import docker
import docker.errors
import requests
from docker.utils import parse_repository_tag
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from toolkit.console import err
from toolkit.errors import (DockerUnavailable, GpuUnavailable, ImageNotFound, RegistryUnavailable,
                            ToolchainBuildFailed, TrtkitError)

LABEL = "org.trtkit"
GPU_DRIVER_ERROR = 'could not select device driver'
NGC_LOGIN_HINT = "run `docker login nvcr.io` with user `$oauthtoken` and an NGC API key as password"


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
    return RegistryUnavailable(f"cannot pull {reference}: {message.strip().splitlines()[0]}")


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
            reason = str(e).splitlines()[0][:200]
            raise DockerUnavailable(f"cannot reach the Docker daemon at {host}: {reason}",
                                    hint="start it (`sudo systemctl start docker`, or `dockerd &`) or set DOCKER_HOST") from None
        return cls(client)

    def gpu_runtime(self) -> bool:
        """Whether this engine can give containers GPUs (the NVIDIA runtime is registered)."""
        return "nvidia" in (self.client.info().get("Runtimes") or {})

    def image(self, reference: str):
        """The local image, pulled (with live progress) when missing."""
        try:
            return self.client.images.get(reference)
        except docker.errors.ImageNotFound:
            self._pull(reference)
            return self.client.images.get(reference)

    def _pull(self, reference: str) -> None:
        repository, tag = parse_repository_tag(reference)
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            layers = {}
            try:
                for event in self.client.api.pull(repository, tag=tag, stream=True, decode=True):
                    if "error" in event:
                        raise classify_pull_error(reference, event["error"])
                    _show_pull_event(progress, layers, event)
            except docker.errors.APIError as e:
                raise classify_pull_error(reference, str(e.explanation or e)) from None
        err.print(f"pulled {reference}")

    def build(self, context: bytes, tag: str, buildargs: dict, labels: dict, on_line: Callable[[str], None]):
        """docker build from an in-memory context, its output streamed line by line."""
        try:
            for event in self.client.api.build(fileobj=io.BytesIO(context), custom_context=True, tag=tag,
                                               buildargs=buildargs, labels=labels, rm=True, forcerm=True,
                                               pull=False, decode=True):
                if "error" in event:
                    raise ToolchainBuildFailed(f"building {tag} failed: {event['error'].strip()}")
                for line in event.get("stream", "").splitlines():
                    on_line(line)
        except docker.errors.APIError as e:
            raise ToolchainBuildFailed(f"building {tag} failed: {e.explanation or e}") from None
        return self.client.images.get(tag)

    def run(self, image: str, command: list[str], volumes: dict, device_requests: list, environment: dict,
            on_output: Callable[[str], None]) -> int:
        """Run a container to completion as the host user; returns its exit code."""
        container = self.client.containers.create(
            image, command=command, volumes=volumes, device_requests=device_requests or None,
            environment=environment, user=f"{os.getuid()}:{os.getgid()}", network_mode="none",
            labels={LABEL: "build"}, detach=True)
        try:
            self._start(container, device_requests)
            for line in _lines(container.logs(stream=True, follow=True)):
                on_output(line)
            return container.wait()["StatusCode"]
        finally:
            container.remove(force=True)

    def _start(self, container, device_requests: list) -> None:
        try:
            container.start()
        except docker.errors.APIError as e:
            if GPU_DRIVER_ERROR in str(e) and device_requests:
                raise GpuUnavailable(
                    "this Docker engine cannot give containers a GPU (no NVIDIA runtime: "
                    f"{GPU_DRIVER_ERROR} \"\" with capabilities [[gpu]])",
                    hint="install the NVIDIA Container Toolkit and restart dockerd, or use --gpus none") from None
            raise

    def leftover_containers(self) -> list:
        return self.client.containers.list(all=True, filters={"label": LABEL})


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


def _lines(chunks: Iterable[bytes]):
    """Whole lines from a stream of byte chunks that may split lines anywhere."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", "replace")
    if buffer:
        yield buffer.decode("utf-8", "replace")
