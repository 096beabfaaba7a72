"""The toolchain image is derived once per base image: setup never runs again on the next build."""
import io
import json
import tarfile

import docker
import pytest
from fresh_base import make_fresh_base, remove_fresh_base

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

SETUP_TRACE = "/opt/tensorrt/python/setup-runs.log"


@pytest.fixture
def fresh_base(docker_client, standin):
    repository, tag = make_fresh_base(docker_client, standin, "trtkit-test/standin")
    yield repository, tag
    remove_fresh_base(docker_client, repository, tag)


def setup_runs(docker_client, image: str) -> list[str]:
    container = docker_client.containers.create(image, ["true"])
    try:
        stream, _ = container.get_archive(SETUP_TRACE)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read().decode().splitlines()
    except docker.errors.NotFound:
        return []
    finally:
        container.remove()


def test_second_build_reuses_the_toolchain(trtkit, models, tmp_path, docker_client, fresh_base):
    repository, tag = fresh_base
    args = ["--verbose", "build", models / "keras3_mlp.keras", "--image", repository, "--tag", tag, "--gpus", "none",
            "--json"]

    first = trtkit(*args, "--out", tmp_path / "first")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "running /opt/tensorrt/python/python_setup.sh" in first.stderr
    toolchain = json.loads(first.stdout)["image"]["toolchain"]
    assert setup_runs(docker_client, toolchain) and len(setup_runs(docker_client, toolchain)) == 1
    assert setup_runs(docker_client, f"{repository}:{tag}") == [], "the base image itself stays untouched"
    toolchain_id = docker_client.images.get(toolchain).id

    second = trtkit(*args, "--out", tmp_path / "second")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "python_setup.sh" not in second.stderr and "deriving toolchain image" not in second.stderr
    assert json.loads(second.stdout)["image"]["toolchain"] == toolchain
    assert docker_client.images.get(toolchain).id == toolchain_id
    assert len(setup_runs(docker_client, toolchain)) == 1
