"""toolkit/pipeline_run.py: one container run's exit errors, and what it keeps on a full disk."""
from pathlib import Path

from box_doubles import FakeArchiveResponse, exit_of, fill, tar_stream

from trtkit import pipeline_run
from trtkit.docker_runner import Archive
from trtkit.errors import OutOfMemory, StepFailed, StepTimedOut, VerificationFailed
from trtkit.events import BuildRecord
from trtkit.modelfile import HDF5_SIGNATURE, ModelRef
from trtkit.plan import BuildPlan
from trtkit_steps import contract


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
    pipeline_run._receive_cache(box, plan)
    assert "the TensorRT caches were not kept: cannot write trtkit's cache in" in capsys.readouterr().err
    assert box.fetched[0].closed
    assert not [p for p in (tiny_disk / "cache").rglob("*") if p.is_file()]


def test_evidence_on_a_full_disk_leaves_no_folder_and_the_verification_stays_the_error(tiny_disk, monkeypatch):
    plan = plan_in(tiny_disk / "cache", monkeypatch)
    (tiny_disk / "cache" / "failures").mkdir(parents=True)
    fill(tiny_disk)
    box = FakeBox(("inputs.npz", "file", b"x" * (64 << 10)), top="evidence")
    said = pipeline_run._keep_evidence(box, plan)
    assert said.startswith("no evidence kept: cannot write trtkit's cache in") and "No space left" in said
    assert list((tiny_disk / "cache" / "failures").iterdir()) == [] and box.fetched[0].closed
