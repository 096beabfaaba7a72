"""toolkit/session.py: publication under the lock; and the verbs against the real Docker engine and the stand-in
image."""

import pytest
from conftest import STANDIN_ARGS

from trtkit import session, triton
from trtkit.docker_runner import Limits
from trtkit.modelfile import HDF5_SIGNATURE, ModelRef
from trtkit.plan import BuildPlan


def test_the_cache_and_triton_copy_the_published_output_while_its_lock_is_held(tmp_path, monkeypatch):
    """Once the lock is released another build may replace --out (a reused one in milliseconds): a copy made after
    that would keep its files under this build's key, or serve them with this build's Triton config."""
    from trtkit import build_cache
    from trtkit.toolchain import Toolchain

    monkeypatch.setenv("TRTKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.h5").write_bytes(HDF5_SIGNATURE)
    plan = BuildPlan(model=ModelRef(tmp_path / "model.h5", "h5"), image="i:t", target="onnx", out_dir=tmp_path / "out",
                     triton_repo=tmp_path / "repo")
    toolchain = Toolchain("t", "sha256:t", {}, "sha256:base", [])
    monkeypatch.setattr(session, "open_session", lambda plan: session.Session(None, toolchain, False, Limits(1 << 30)))
    monkeypatch.setattr(session, "_build_fresh", lambda *args: {"target": {"chosen": "onnx"}})
    lock, copies = tmp_path / ".out.trtkit.lock", []
    monkeypatch.setattr(build_cache, "keep", lambda output, key: copies.append(("cache", lock.exists())))
    monkeypatch.setattr(triton, "write", lambda folder, out, manifest, force: copies.append(("triton", lock.exists())))
    session.build(plan)
    assert copies == [("cache", True), ("triton", True)] and not lock.exists()


NO_GPU_ARGS = [arg for arg in STANDIN_ARGS if arg not in ("--gpus", "none")]


@pytest.fixture
def no_nvidia_runtime(docker_client):
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this Docker engine has the NVIDIA runtime: --gpus all can be served")


@pytest.mark.docker
def test_a_reused_build_cannot_hide_that_gpus_all_cannot_be_served(trtkit, models, no_nvidia_runtime,
                                                                   no_leftovers):
    """The same build on --gpus none is in the cache of finished builds; --gpus all fails alike with or without it."""
    build = ["build", models / "two_io.h5", *NO_GPU_ARGS, "--target", "onnx"]
    fresh = trtkit(*build, "--gpus", "all", "--out", "fresh")
    assert fresh.returncode == 15, fresh.stderr[-2000:]
    cached = trtkit(*build, "--gpus", "none", "--out", "cpu")
    assert cached.returncode == 0, cached.stderr[-2000:]
    reused = trtkit(*build, "--gpus", "all", "--out", "reused")
    assert reused.returncode == 15, reused.stderr[-2000:]
    error = [line for line in fresh.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error == [line for line in reused.stderr.splitlines() if line.startswith("error:")]
    assert "reusing the finished build" not in reused.stderr
