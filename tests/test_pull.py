"""Pulling IMAGE:TAG when it is missing, against a local registry (tests/registry.py)."""
import pytest
from registry import Registry

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture
def registry(docker_client):
    server = Registry()
    yield server
    server.close()
    for image in docker_client.images.list():
        if any(tag.startswith(server.host) for tag in image.tags):
            remove_with_children(docker_client, image.id)


def remove_with_children(client, image_id):
    """The image and the layers a failed toolchain build left on top of it."""
    for child in client.images.list(all=True):
        if child.attrs.get("Parent") == image_id:
            remove_with_children(client, child.id)
    client.images.remove(image_id, force=True)


def build(trtkit, models, tmp_path, image, tag):
    out = tmp_path / "out"
    result = trtkit("build", models / "keras3_mlp.keras", "--image", image, "--tag", tag, "--gpus", "none",
                    "--out", out)
    assert "Traceback" not in result.stderr and not out.exists()
    return result


def test_missing_image_is_pulled_then_derived(trtkit, models, tmp_path, registry, docker_client):
    """The pull works; this tiny image has no Python, so deriving the toolchain fails, in one line."""
    image = f"{registry.host}/nvidia/tensorrt"
    result = build(trtkit, models, tmp_path, image, "1")
    assert f"pulled {image}:1" in result.stderr
    assert docker_client.images.get(f"{image}:1")
    assert result.returncode == 20, result.stderr[-1500:]
    assert "building trtkit/toolchain:" in result.stderr


def test_unknown_tag(trtkit, models, tmp_path, registry):
    result = build(trtkit, models, tmp_path, f"{registry.host}/nvidia/tensorrt", "99.99-py3")
    assert result.returncode == 13, result.stderr[-1500:]
    assert "unknown tag or repository" in result.stderr


def test_not_logged_in(trtkit, models, tmp_path, registry):
    result = build(trtkit, models, tmp_path, f"{registry.host}/private/tensorrt", "1")
    assert result.returncode == 14, result.stderr[-1500:]
    assert f"not logged in to {registry.host}" in result.stderr and "docker login" in result.stderr
