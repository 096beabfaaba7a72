"""Files a build writes belong to the user who ran trtkit, not to root."""
import grp
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
from conftest import STANDIN_ARGS

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]
USER = "trtkit-tester"


@pytest.fixture(scope="module")
def tester():
    """An ordinary user who may use the Docker socket (created when running as root)."""
    if os.getuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("needs root to create an ordinary user with access to the Docker socket")
    socket_group = grp.getgrgid(os.stat("/var/run/docker.sock").st_gid).gr_name
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--groups", socket_group, USER], check=True)
    return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def tester_python():
    """A Python the tester may execute, seeing this environment's packages (ours may live under /root) through
    their .pth files too: trtkit is installed editable, by a finder a .pth file registers."""
    python = "/usr/bin/python3"
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    if version.returncode != 0 or version.stdout.strip() != str(sys.version_info[:2]):
        pytest.skip(f"needs {python} of Python {sys.version_info[:2]} to run trtkit as another user")
    return python, sysconfig.get_paths()["purelib"]


def test_artifacts_belong_to_the_calling_user(tester, tester_python, models):
    python, pythonpath = tester_python
    folder = Path(tempfile.mkdtemp(prefix="trtkit-owner-"))
    try:
        os.chown(folder, tester.pw_uid, tester.pw_gid)
        shutil.copy(models / "keras3_mlp.keras", folder)
        env = {"PATH": os.environ["PATH"], "HOME": tester.pw_dir, "TRTKIT_CACHE": str(folder / "cache")}
        as_trtkit = "import runpy, site, sys; site.addsitedir(sys.argv.pop(1)); runpy.run_module('trtkit', " \
                    "run_name='__main__', alter_sys=True)"
        result = subprocess.run(["runuser", "-u", USER, "--", python, "-c", as_trtkit, pythonpath, "build",
                                 str(folder / "keras3_mlp.keras"), *STANDIN_ARGS, "--out", str(folder / "out")],
                                cwd=folder, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        written = [p for p in folder.rglob("*") if p.name != "keras3_mlp.keras"]
        assert any(p.name == "model.onnx" for p in written)
        owners = {(p.stat().st_uid, p.stat().st_gid) for p in written}
        assert owners == {(tester.pw_uid, tester.pw_gid)}, owners
    finally:
        shutil.rmtree(folder)
