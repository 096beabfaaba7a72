"""A Docker engine elsewhere (DOCKER_HOST=tcp://...): it cannot see this host's files, so nothing is bind-mounted;
the model goes in and the artifacts come out through the API (put_archive, get_archive)."""
import json
import os

import pytest
from conftest import STANDIN_ARGS
from daemon_proxy import DaemonProxy

from trtkit.docker_runner import Box, Limits
from trtkit_steps import contract

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


def test_a_build_container_mounts_nothing_of_the_host():
    spec = Box(None, "image", ["true"], Limits(memory_bytes=1 << 30), {}, [], "build").spec   # type: ignore[arg-type]
    assert [(m["Type"], m["Target"], m["Source"]) for m in spec["mounts"]] == [("volume", contract.ROOT, None)]
    assert not spec.get("volumes") and not spec.get("binds")


def test_a_build_through_a_tcp_docker_host(trtkit, trtkit_env, models, tmp_path):
    proxy = DaemonProxy()
    try:
        env = dict(trtkit_env, DOCKER_HOST=proxy.url)
        out = tmp_path / "out"
        result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--target", "onnx", "--out", out,
                        "--json", env=env)
    finally:
        proxy.cut()
    assert result.returncode == 0, result.stderr[-2000:]
    assert proxy.connections > 0, "the build did not go through the TCP engine"
    manifest = json.loads(result.stdout)
    assert manifest["verification"][0]["passed"]
    assert (out / "model.onnx").stat().st_uid == os.getuid()
