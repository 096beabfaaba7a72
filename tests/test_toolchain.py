"""The toolchain image is derived once per base image: setup never runs again on the next build."""
import io
import json
import tarfile
import uuid

import docker
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

SETUP_TRACE = "/opt/tensorrt/python/setup-runs.log"


@pytest.fixture
def fresh_base(docker_client, standin):
    """A new base image id (the stand-in plus a label), so no toolchain exists for it yet."""
    repository, tag = "trtkit-test/standin", uuid.uuid4().hex[:8]
    dockerfile = f"FROM {standin}\nLABEL org.trtkit.test={tag}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=f"{repository}:{tag}", rm=True)
    yield repository, tag
    for image in docker_client.images.list(filters={"label": f"org.trtkit.base={repository}:{tag}"}):
        docker_client.images.remove(image.id, force=True)
    docker_client.images.remove(f"{repository}:{tag}", force=True)


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
    args = ["build", models / "keras3_mlp.keras", "--image", repository, "--tag", tag, "--gpus", "none", "--json"]

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
