"""The tag table in toolkit/tags.py and the README's copy of it, which is generated."""
from pathlib import Path

import pytest

from trtkit.tags import (
    BEGIN,
    END,
    KNOWN_TAGS,
    known_tag,
    main,
    render_markdown,
    trtexec_has_precision_flags,
    with_table,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def _rows() -> dict[str, list[str]]:
    lines = [line for line in render_markdown().splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].split()[0]: cells for cells in (line.strip("| ").split(" | ") for line in lines[1:])}


def test_readme_table_is_the_generated_one():
    readme = README.read_text()
    assert with_table(readme) == readme, "the README's tag table is stale: run `make readme-tags`"


def test_table_rows():
    assert [t.tag for t in KNOWN_TAGS] == sorted({t.tag for t in KNOWN_TAGS})
    assert known_tag("19.07-py3").tensorrt == "5.1.5" and known_tag("99.01-py3") is None
    assert {t.tensorrt.split(".")[0] for t in KNOWN_TAGS if t.tag.startswith("26.")} == {"10", "11"}
    for info in KNOWN_TAGS:
        assert info.note, f"{info.tag}: a row says which notes its source is, or what its figures rest on"
        assert info.source is None or info.source.startswith("https://docs.nvidia.com/")


def test_unsourced_rows_are_marked_and_sourced_rows_link():
    rows = _rows()
    for info in KNOWN_TAGS:
        tag, *_, source = rows[info.tag]
        assert tag.endswith(" ?") == (info.source is None)
        assert (f"]({info.source})" in source) == (info.source is not None)
    assert "`?`" in render_markdown().splitlines()[0], "the legend explains the marker"


def test_precision_flags_column_follows_the_tensorrt_major():
    assert trtexec_has_precision_flags("10.15.1") and not trtexec_has_precision_flags("11.0.0")
    rows = _rows()
    assert rows["24.05-py3"][5] == "`--fp16`, `--int8`"
    assert rows["26.06-py3"][5] == "none (strongly typed)"


def test_with_table_replaces_only_the_marked_block(tmp_path):
    stale = f"intro\n{BEGIN}\nold table\n{END}\noutro\n"
    fresh = with_table(stale)
    assert fresh == f"intro\n{BEGIN}\n{render_markdown()}\n{END}\noutro\n"
    assert with_table(fresh) == fresh
    readme = tmp_path / "README.md"
    readme.write_text(stale)
    main([str(readme)])
    assert readme.read_text() == fresh


@pytest.mark.parametrize("text", ["no markers", f"{BEGIN}\n{END}\n{BEGIN}\n{END}\n"])
def test_with_table_needs_exactly_one_block(text):
    with pytest.raises(ValueError):
        with_table(text)


def test_main_prints_the_table(capsys):
    main([])
    assert capsys.readouterr().out == render_markdown() + "\n"
