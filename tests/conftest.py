"""Fixtures for tests that run the real trtkit CLI against the real Docker engine.

They need a running dockerd and the stand-in image (.ci/run provides both;
`bash images/build.sh` makes the image). Each test that starts containers
checks that none is left behind.
"""
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parents[1]
STANDIN = ("trtkit/standin", "19.07-py3")
STANDIN_ARGS = ["--image", STANDIN[0], "--tag", STANDIN[1], "--gpus", "none"]
pytest_plugins = ["runtime_sim"]   # the fake_cuda fixture of the test_runtime_* files
MODELS = ["origin_lstm.h5", "cnn_bn.h5", "two_io.h5", "keras3_mlp.keras", "origin_savedmodel", "weights_only.h5",
          "fp16_overflow.h5", "price_regression.h5"]


@pytest.fixture(scope="session")
def docker_client():
    """The local Docker engine; a test that needs it is skipped, not failed, where none answers."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        pytest.skip(f"no Docker engine to reach: {error}")
    return client


@pytest.fixture(scope="session")
def standin(docker_client):
    """The stand-in image, built (offline recipe) when missing."""
    reference = ":".join(STANDIN)
    try:
        docker_client.images.get(reference)
    except docker.errors.ImageNotFound:
        subprocess.run(["bash", str(REPO / "images" / "build.sh")], check=True)
    return reference


def run_in_standin(docker_client, standin, script: str, folder: Path, names: list[str]) -> str:
    """Run a model-making script of this repo inside the stand-in image, writing into folder; its stdout."""
    return docker_client.containers.run(
        standin, ["python3", f"/repo/{script}", "/models"] + names, remove=True, network_mode="none",
        user=f"{os.getuid()}:{os.getgid()}", environment={"HOME": "/tmp"},
        volumes={str(REPO): {"bind": "/repo", "mode": "ro"}, str(folder): {"bind": "/models", "mode": "rw"}}).decode()


@pytest.fixture(scope="session")
def models(standin, docker_client, tmp_path_factory) -> Path:
    """The example models, made by examples/make_models.py inside the stand-in image."""
    folder = tmp_path_factory.mktemp("models")
    run_in_standin(docker_client, standin, "examples/make_models.py", folder, MODELS)
    return folder


@pytest.fixture(scope="session")
def hostile(standin, docker_client, tmp_path_factory) -> Path:
    """Models whose Lambda layer attacks the build (tests/hostile_models.py)."""
    folder = tmp_path_factory.mktemp("hostile")
    run_in_standin(docker_client, standin, "tests/hostile_models.py", folder, [])
    return folder


@pytest.fixture(scope="session")
def trtkit_env(tmp_path_factory) -> dict:
    """The CLI's environment: a cache of its own, so the probe and caches are real but isolated."""
    return dict(os.environ, TRTKIT_CACHE=str(tmp_path_factory.mktemp("trtkit-cache")), COLUMNS="200")


@pytest.fixture
def trtkit(trtkit_env, tmp_path):
    """Run the real CLI (`python -m trtkit`) in tmp_path; returns the CompletedProcess."""

    def run(*args, env=None, timeout=600):
        return subprocess.run([sys.executable, "-m", "trtkit", *map(str, args)], cwd=tmp_path,
                              env=env or trtkit_env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def no_leftovers(docker_client):
    """Fail the test if it leaves any trtkit container behind."""
    yield
    left = docker_client.containers.list(all=True, filters={"label": "org.trtkit"})
    assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture
def tiny_disk(tmp_path):
    """A 128 KiB file system: a full disk, for real."""
    if os.getuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "tiny"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.fixture(scope="session")
def exported(models, trtkit_env, tmp_path_factory) -> Path:
    """The origin model exported to ONNX once: the first stage of a two-stage build. Copy it to change it."""
    out = tmp_path_factory.mktemp("first") / "origin"
    result = subprocess.run([sys.executable, "-m", "trtkit", "build", str(models / "origin_lstm.h5"), *STANDIN_ARGS,
                             "--target", "onnx", "--out", str(out)], env=trtkit_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return out
