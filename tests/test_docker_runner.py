"""toolkit/docker_runner.py: device requests, pull errors, log lines, a box's removal."""
from types import SimpleNamespace

import docker.errors
import pytest
import requests

from trtkit.docker_runner import DockerRunner, Limits, _lines, classify_pull_error, device_requests
from trtkit.errors import ImageNotFound, RegistryUnavailable, StepFailed
from trtkit.plan import GpuRequest


def test_device_requests_follow_the_runtime():
    assert device_requests(GpuRequest("auto"), available=False) == []
    assert device_requests(GpuRequest("none"), available=True) == []
    [request] = device_requests(GpuRequest("all"), available=False)   # asked for: let the engine say no
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    [request] = device_requests(GpuRequest("ids", ("1",)), available=True)
    assert request["DeviceIDs"] == ["1"]


@pytest.mark.parametrize("message, error, text", [
    ("unauthorized: authentication required", RegistryUnavailable, "docker login nvcr.io"),
    ("manifest for nvcr.io/nvidia/tensorrt:99.99-py3 not found: manifest unknown", ImageNotFound, "unknown tag"),
    ('Get "https://nvcr.io/v2/": dial tcp: lookup nvcr.io: no such host', RegistryUnavailable, "unreachable"),
])
def test_pull_errors_become_advice(message, error, text):
    result = classify_pull_error("nvcr.io/nvidia/tensorrt:99.99-py3", message)
    assert isinstance(result, error) and text in result.one_line()


def test_lines_reassembles_split_chunks():
    assert list(_lines([b"ab", b"c\nd", b"e\n", b"tail"], 100)) == ["abc", "de", "tail"]


def test_lines_cuts_a_huge_line_and_drops_its_rest():
    chunks = [b"x" * 60, b"x" * 60, b"x" * 60 + b"\nnext\n"]
    assert list(_lines(chunks, 100)) == ["x" * 100 + " [line cut]", "next"]


class FakeContainers:
    def __init__(self, failure):
        self.failure, self.removed = failure, []

    def list(self, **filters):
        if self.failure == "list":
            raise requests.exceptions.ReadTimeout("read timed out")
        return [self]

    def remove(self, **options):
        if self.failure == "remove":
            raise docker.errors.APIError("removal of container is already in progress")
        self.removed.append(options)


@pytest.mark.parametrize("failure", [None, "list", "remove"])
def test_a_box_that_cannot_be_removed_is_one_warning(capsys, failure):
    containers = FakeContainers(failure)
    runner = DockerRunner(SimpleNamespace(containers=containers))
    box = runner.box("image", ["true"], Limits(memory_bytes=1 << 30), {}, [])
    box.__exit__(StepFailed, StepFailed("refused"), None)
    warned = capsys.readouterr().err
    assert containers.removed == ([] if failure else [{"force": True, "v": True}])   # v: its volume too
    assert ("could not remove the build container" in warned) == bool(failure) and "Traceback" not in warned
