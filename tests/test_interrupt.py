"""Ctrl-C during a build: exit 130, the container removed, nothing written."""
import signal
import subprocess
import sys
import time

import pytest

from conftest import STANDIN_ARGS

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


def wait_for_build_container(docker_client, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if docker_client.containers.list(filters={"label": "org.trtkit=build", "status": "running"}):
            return True
        time.sleep(0.2)
    return False


def test_ctrl_c_removes_the_container_and_writes_nothing(models, tmp_path, trtkit_env, docker_client):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "build", str(models / "origin_lstm.h5"), *STANDIN_ARGS,
                             "--out", str(out)], cwd=tmp_path, env=trtkit_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_build_container(docker_client, proc), "the build container never ran"
        time.sleep(2)   # inside the steps, not just starting
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-1500:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
