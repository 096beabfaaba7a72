"""toolkit/image_ref.py: image references as trtkit takes them, no silent 'latest'."""
import pytest
import typer

from trtkit.image_ref import image_reference, whole_reference


def test_image_reference_validates_the_tag():
    assert image_reference("nvcr.io/nvidia/tensorrt", "19.07-py3") == "nvcr.io/nvidia/tensorrt:19.07-py3"
    with pytest.raises(typer.BadParameter):
        image_reference("x", "bad tag")


@pytest.mark.parametrize("text, reference", [
    ("nvcr.io/nvidia/tensorrt:24.05-py3", "nvcr.io/nvidia/tensorrt:24.05-py3"),
    ("localhost:5000/trt:8.6-py3", "localhost:5000/trt:8.6-py3"),
    ("trtkit/standin@sha256:" + "a" * 64, "trtkit/standin@sha256:" + "a" * 64)])
def test_a_whole_image_reference_is_checked_like_image_and_tag(text, reference):
    assert whole_reference(text) == reference


@pytest.mark.parametrize("text", ["trtkit/standin", "localhost:5000/trt", "bad ref!!:1", "repo@sha256:abc"])
def test_a_whole_image_reference_without_a_tag_or_malformed_is_a_usage_error(text):
    with pytest.raises(typer.BadParameter):
        whole_reference(text)


def test_a_digest_is_a_valid_pinned_reference():
    digest = "sha256:" + "0123456789abcdef" * 4
    assert image_reference("nvcr.io/nvidia/tensorrt", digest) == f"nvcr.io/nvidia/tensorrt@{digest}"
    assert image_reference(f"localhost:5000/a/b@{digest}", None) == f"localhost:5000/a/b@{digest}"
