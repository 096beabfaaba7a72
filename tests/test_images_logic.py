"""toolkit/images.py without a Docker engine: the wheelhouse's dependencies for another Python."""
import zipfile
from pathlib import Path

from trtkit import images


def fake_wheel(folder: Path, name: str, requires: list[str]) -> None:
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{name}-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: " + name + "\n"
                       + "".join(f"Requires-Dist: {r}\n" for r in requires) + "\nRequires-Dist: not-a-header\n")


def test_a_folded_requires_dist_header_is_read_whole(tmp_path):
    with zipfile.ZipFile(tmp_path / "x-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("x-1.0.dist-info/METADATA", 'Metadata-Version: 2.1\nName: x\nRequires-Dist: zipp>=3.1;\n'
                       ' python_version < "3.10"\nRequires-Dist: cycler\n\nRequires-Dist: body-text\n')
    assert [str(r) for r in images.requires_dist(tmp_path / "x-1.0-py3-none-any.whl")] == [
        'zipp>=3.1; python_version < "3.10"', "cycler"]


def test_wheelhouse_fetches_what_the_target_pythons_markers_ask_for(tmp_path, monkeypatch):
    """pip download --python-version 3.9, run by a newer Python, leaves out `x; python_version < "3.10"`."""
    asked: list[list[str]] = []

    def pip(arguments):     # what pip does: the named wheels, their dependencies by the host Python's markers
        names = arguments[arguments.index(str(tmp_path)) + 1:]
        asked.append(names)
        for name in names:
            requires = {"mpl": ['importlib-resources>=3.2; python_version < "3.10"', "cycler",
                                'pytest; extra == "test"', 'tomli; python_version >= "3.11"'],
                        "importlib-resources>=3.2": ['zipp>=3.1; python_version < "3.10"']}.get(name, [])
            fake_wheel(tmp_path, canonical := name.split(">")[0].replace("-", "_"), requires)
            if canonical == "mpl":
                fake_wheel(tmp_path, "cycler", [])

    monkeypatch.setattr(images, "run_pip", lambda arguments: pip(arguments))
    wheels = images.download_wheels(["mpl"], "3.9", tmp_path)
    assert asked == [["mpl"], ["importlib-resources>=3.2"], ["zipp>=3.1"]]
    assert [w.name.split("-")[0] for w in wheels] == ["cycler", "importlib_resources", "mpl", "zipp"]
    assert images.missed_requirements(tmp_path, "3.12", ()) == ["tomli"]
