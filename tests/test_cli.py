"""toolkit/cli.py: usage errors of the commands, one line each."""
import pytest
from typer.testing import CliRunner

from trtkit.cli import app
from trtkit.errors import OutputNotWritable


def test_a_wheelhouse_folder_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(app, ["wheelhouse", "24.05-py3", "-o", str(tmp_path / "file" / "wheels")])
    assert result.exit_code == OutputNotWritable.exit_code, result.output
    assert "cannot make the wheelhouse folder" in result.output and result.exception.__class__ is SystemExit


@pytest.mark.parametrize("command", [["images", "save", "nvcr.io/nvidia/tensorrt", "-o", "x.tar"],
                                     ["images", "derive", "nvcr.io/nvidia/tensorrt"]])
def test_an_image_without_a_tag_is_a_usage_error_before_the_daemon(monkeypatch, command):
    """Not exit 12 when the daemon is down: the reference is wrong either way."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2 and "names no tag" in result.output, result.output
