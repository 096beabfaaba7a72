"""toolkit/resources.py finds the box's files in the checkout (editable install) or in the wheel, which pyproject.toml
fills: every package of the tree is listed there, under its import name and again as the box's files."""
import sys
from pathlib import Path

from trtkit import resources

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
STEPS = REPO / "scripts" / "trtkit_steps"


def packages_under(name: str, folder: Path) -> set[str]:
    return {".".join((name,) + init.parent.relative_to(folder).parts) for init in folder.rglob("__init__.py")}


def test_the_wheel_lists_every_package_of_the_tree():
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    box_files = {"trtkit._resources.scripts", "trtkit._resources.images.toolchain"}
    assert sorted(listed) == sorted(packages_under("trtkit", REPO / "toolkit") | packages_under("trtkit_steps", STEPS)
                                    | packages_under("trtkit._resources.scripts.trtkit_steps", STEPS) | box_files)


def test_the_tests_run_the_tree():
    """make installs trtkit editable: the box gets the tree's scripts, not an installed copy."""
    assert resources.scripts_dir() == REPO / "scripts" and (resources.scripts_dir() / "pipeline.py").is_file()
    assert resources.toolchain_dir() == REPO / "images" / "toolchain"
