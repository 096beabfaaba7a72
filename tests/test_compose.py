"""compose.yaml's trtkit service: `docker compose run --rm trtkit build ...` against the real engine."""
import json
import os
import shutil
import subprocess
import uuid

import pytest
from conftest import REPO, STANDIN_ARGS

import trtkit


def compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


COMPOSE = compose_command()
needs_compose = pytest.mark.skipif(COMPOSE is None, reason="neither `docker compose` nor `docker-compose` is "
                                   "installed (apt-get install docker-compose)")


def test_compose_names_this_version():
    assert f"image: trtkit/trtkit:{trtkit.__version__}\n" in (REPO / "compose.yaml").read_text()


@pytest.fixture(scope="module")
def trtkit_image():
    """trtkit/trtkit made from this checkout, so the service runs the code under test."""
    subprocess.run(["bash", str(REPO / "images" / "build-trtkit.sh")], check=True)


@pytest.fixture
def compose(tmp_path, docker_client):
    """Run compose.yaml in a project of its own from tmp_path/work; afterwards no container of it may be left,
    and `down -v` removes its network and cache volume."""
    folder = tmp_path / "work"
    folder.mkdir()
    project = f"trtkit-test-{uuid.uuid4().hex[:8]}"
    base = [*COMPOSE, "-f", str(REPO / "compose.yaml"), "-p", project]
    env = dict(os.environ, PWD=str(folder))       # compose.yaml mounts $PWD, which a shell would set

    def run(*args):
        return subprocess.run([*base, "run", "--rm", "-T", *args], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=600)

    yield folder, run
    left = docker_client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    subprocess.run([*base, "down", "-v"], cwd=folder, env=env, capture_output=True, check=True)
    assert not left, f"compose left containers behind: {[c.name for c in left]}"


@pytest.mark.docker
@needs_compose
@pytest.mark.usefixtures("no_leftovers")
def test_compose_run_builds_into_the_users_folder(trtkit_image, models, compose):
    folder, run = compose
    shutil.copy(models / "origin_lstm.h5", folder)
    # As root, make it an ordinary user's folder, so that the outputs' owner proves the entrypoint's switch.
    owner = (os.getuid(), os.getgid()) if os.getuid() else (4242, 4242)
    for path in (folder, folder / "origin_lstm.h5"):
        os.chown(path, *owner)

    result = run("trtkit", "build", "origin_lstm.h5", *STANDIN_ARGS, "--target", "onnx")
    assert result.returncode == 0, result.stderr[-2000:]
    out = folder / "trtkit-out" / "origin_lstm"
    assert (out / "model.onnx").stat().st_size > 0
    manifest = json.loads((out / "trtkit.json").read_text())
    assert manifest["model"]["path"] == str(folder / "origin_lstm.h5")      # mounted at the host's path
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in folder.rglob("*")}
    assert owners == {owner}, owners


@pytest.mark.docker
@needs_compose
def test_trtkit_gpu_reserves_the_gpus(trtkit_image, compose, docker_client):
    _, run = compose
    result = run("trtkit-gpu", "--version")
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):      # as DockerRunner.gpu_runtime
        assert result.returncode == 0, result.stderr[-2000:]
    else:      # the engine was asked for NVIDIA GPUs, which it cannot give
        assert result.returncode != 0
        assert 'could not select device driver "nvidia"' in result.stderr, result.stderr[-2000:]
