"""toolkit/engine_api.py: the Engine API requests the Docker SDK has no public call for, on the real engine."""
import io
import json
import os
import tarfile
import time
import uuid

import docker.errors
import pytest
from test_images import build_image, remove_images

from trtkit.docker_runner import DockerRunner, Limits
from trtkit.engine_api import streamed_get
from trtkit_steps import contract

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture
def two_small_images(docker_client):
    references = [f"trtkit-test/engine-api-{i}:{uuid.uuid4().hex[:12]}" for i in range(2)]
    ids = [build_image(docker_client, reference, f"FROM scratch\nLABEL org.trtkit.test={reference}\nCOPY blob /\n",
                       {"blob": os.urandom(1 << 16)}) for reference in references]
    yield references
    for image_id in ids:
        remove_images(docker_client, image_id)


def test_one_archive_saves_several_images(docker_client, two_small_images):
    with streamed_get(docker_client.api, "/images/get", {"names": two_small_images}, None) as response:
        archive = b"".join(response.iter_content(1 << 20))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert sorted(tag for image in manifest for tag in image["RepoTags"]) == sorted(two_small_images)


def test_the_daemons_errors_are_the_sdks(docker_client):
    with pytest.raises(docker.errors.NotFound):
        streamed_get(docker_client.api, "/images/get", {"names": ["trtkit-test/absent:none"]}, None)


def test_a_box_fetch_hangs_up_mid_stream_and_finds_no_absent_path(standin):
    """Closed after one chunk, the container is removed at once (left open, its removal waits for the
    API timeout and fails)."""
    runner = DockerRunner.connect()
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    with runner.box(standin, ["true"], Limits(memory_bytes=256 << 20), {}, []) as box:
        box.put(payload.getvalue())
        assert box.fetch(f"{contract.ROOT}/absent") is None
        archive = box.fetch(contract.ROOT)
        assert archive is not None and len(next(archive)) > 0
        archive.close()
        started = time.monotonic()
    assert time.monotonic() - started < 20
