"""toolkit/session.py: publication under the lock, exit errors, full disks; and the verbs against the real Docker
engine and the stand-in image."""
from pathlib import Path

import pytest
from box_doubles import FakeArchiveResponse, exit_of, fill, tar_stream
from conftest import STANDIN_ARGS

from trtkit import session, triton
from trtkit.docker_runner import Archive, Limits
from trtkit.errors import OutOfMemory, StepFailed, StepTimedOut, VerificationFailed
from trtkit.events import BuildRecord
from trtkit.modelfile import HDF5_SIGNATURE, ModelRef
from trtkit.plan import BuildPlan
from trtkit_steps import contract


def test_the_cache_and_triton_copy_the_published_output_while_its_lock_is_held(tmp_path, monkeypatch):
    """Once the lock is released another build may replace --out (a reused one in milliseconds): a copy made after
    that would keep its files under this build's key, or serve them with this build's Triton config."""
    from trtkit import build_cache, session
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


def test_exit_errors():
    assert isinstance(exit_of(137, expired="export"), StepTimedOut)
    assert "step export" in exit_of(0, expired="export").message
    assert isinstance(exit_of(3, oom=True), OutOfMemory) and "3.0 GiB" in exit_of(3, oom=True).message
    assert isinstance(exit_of(0), StepFailed) and "no final event" in exit_of(0).message
    assert exit_of(0, BuildRecord(finished=True)) is None
    assert isinstance(exit_of(contract.EXIT_VERIFY_FAILED, BuildRecord(error={"message": "off"})), VerificationFailed)
    assert exit_of(1).message.startswith("the build container exited with code 1")


class FakeBox:
    """A box whose container returns one tar stream for any path."""

    def __init__(self, *members, top):
        self.members, self.top, self.fetched = members, top, []

    def fetch(self, path):
        self.fetched.append(response := FakeArchiveResponse(tar_stream(*self.members, top=self.top)))
        return Archive(response)


def plan_in(cache: Path, monkeypatch) -> BuildPlan:
    monkeypatch.setenv("TRTKIT_CACHE", str(cache))
    model = cache.parent / "m.h5"
    model.write_bytes(HDF5_SIGNATURE)
    return BuildPlan(model=ModelRef(model, "h5"), image="i:t")


def test_a_full_cache_disk_loses_the_tensorrt_caches_with_one_warning(tiny_disk, monkeypatch, capsys):
    plan = plan_in(tiny_disk / "cache", monkeypatch)
    fill(tiny_disk)
    box = FakeBox(("timing-a.cache", "file", b"x" * (64 << 10)), top="cache")
    session._receive_cache(box, plan)
    assert "the TensorRT caches were not kept: cannot write trtkit's cache in" in capsys.readouterr().err
    assert box.fetched[0].closed
    assert not [p for p in (tiny_disk / "cache").rglob("*") if p.is_file()]


def test_evidence_on_a_full_disk_leaves_no_folder_and_the_verification_stays_the_error(tiny_disk, monkeypatch):
    plan = plan_in(tiny_disk / "cache", monkeypatch)
    (tiny_disk / "cache" / "failures").mkdir(parents=True)
    fill(tiny_disk)
    box = FakeBox(("inputs.npz", "file", b"x" * (64 << 10)), top="evidence")
    said = session._keep_evidence(box, plan)
    assert said.startswith("no evidence kept: cannot write trtkit's cache in") and "No space left" in said
    assert list((tiny_disk / "cache" / "failures").iterdir()) == [] and box.fetched[0].closed


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
