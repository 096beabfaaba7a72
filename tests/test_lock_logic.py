"""toolkit/lock.py without Docker (test_lock.py runs `trtkit lock`)."""
from trtkit.lock import pinned_reference


def test_a_locked_build_runs_the_digest_of_its_own_repository():
    """An image pushed to a mirror too has a digest there; the lock runs the reference's own, which CI can pull."""
    mirror, nvcr = "localhost:5000/trt@sha256:" + "a" * 64, "nvcr.io/nvidia/tensorrt@sha256:" + "b" * 64
    entry = {"digests": sorted([nvcr, mirror])}
    assert pinned_reference("nvcr.io/nvidia/tensorrt:24.05-py3", entry) == nvcr
    assert pinned_reference("localhost:5000/trt:24.05-py3", entry) == mirror
    assert pinned_reference("trtkit/other:1", entry) == "trtkit/other:1"     # no digest of its own: by its tag
    assert pinned_reference(nvcr.replace("b" * 64, "c" * 64), entry) == nvcr.replace("b" * 64, "c" * 64)
