"""toolkit/exported.py: an earlier output as MODEL, read defensively."""
import json

import pytest

from trtkit.errors import InvalidModel
from trtkit.exported import manifest_field


def test_manifest_fields_are_read_defensively(tmp_path):
    path = tmp_path / "trtkit.json"
    manifest = {"image": {"reference": "repo:tag"}, "target": None, "artifacts": "model.onnx"}
    assert manifest_field(manifest, path, "image.reference") == "repo:tag"
    for field, kind in [("target.chosen", str), ("image.digest", str), ("artifacts", list), ("model.path", str)]:
        with pytest.raises(InvalidModel, match=f"{path} has no valid {field} ") as raised:
            manifest_field(manifest, path, field, kind)
        assert raised.value.exit_code == 11


@pytest.mark.parametrize("names", [{"event": "done"}, {"event": "versions", "inputs": "x"}])
def test_an_earlier_output_cannot_name_its_node_names_another_event(tmp_path, names):
    """Node names are checked as the contract's names event: a trtkit.json whose names carry an "event" key of
    their own must not be checked as that (emptier) event instead, and pass without inputs or outputs."""
    from trtkit.exported import NEEDED, read_earlier_build
    for name in NEEDED:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "trtkit.json").write_text(json.dumps({"model": {"path": "m.h5"}, "names": names}))
    with pytest.raises(InvalidModel, match="node names of the wrong shape"):
        read_earlier_build(tmp_path)
