"""toolkit/report.py: report.md and report.html show what a container wrote as text, never as markup."""
import html
import re

import pytest

from trtkit import report

HOSTILE = "<img src=x onerror=alert(1)//> &amp; [a](javascript:x) ![i](http://e/x.png) `c` a|b \\"


def hostile_manifest() -> dict:
    """A manifest whose every container-supplied string is HOSTILE (a .keras model's input name, say)."""
    names = {"name": HOSTILE, "keras_tensor": HOSTILE, "frozen": HOSTILE, "imported": HOSTILE}
    return {
        "trtkit_version": "0", "created": "2026-01-01T00:00:00+00:00",
        "model": {"path": f"/models/{HOSTILE}.keras", "format": "keras", "sha256": HOSTILE, "params": 3},
        "image": {"reference": HOSTILE, "id": HOSTILE, "repo_digests": [], "toolchain": HOSTILE,
                  "toolchain_id": HOSTILE},
        "options": {}, "target": {"chosen": "onnx", "reason": HOSTILE}, "versions": {HOSTILE: HOSTILE},
        "names": {"params": 3, "inputs": [{**names, "shape": [None, HOSTILE], "dtype": HOSTILE}],
                  "outputs": [names]},
        "steps": [{"step": HOSTILE, "seconds": 1.0, "ok": True}],
        "verification": [{"artifact": HOSTILE, "max_abs_err": 0.0, "atol": 1e-5, "passed": True}],
        "artifacts": [{"name": HOSTILE, "kind": HOSTILE, "bytes": 1, "sha256": HOSTILE}],
        "engine": {HOSTILE: HOSTILE},
        "bench": {"device": HOSTILE, "rows": [{"batch": 1, "framework": HOSTILE, "mode": HOSTILE, "device": HOSTILE,
                                               "error": HOSTILE}]},
        "earlier_build": None, "build_key": None, "reused_from": None, "total_seconds": 1.0,
    }


def test_markdown_writes_container_text_as_character_references():
    """Not even a backslash-escaped '<': the original Markdown does not take '\\<' as an escape."""
    text = report.markdown(hostile_manifest())
    assert not re.search(r"[<>`\[\]!\\]", text), text
    assert "&amp;" not in text, "an entity in a name is shown as written, not decoded"
    cells = [line for line in text.splitlines() if line.startswith("| input ")]
    assert len(cells) == 1 and cells[0].count("|") == 8, "a '|' in a name makes no new cell"
    assert "&#60;img src=x onerror=alert(1)//&#62;" in text


@pytest.mark.parametrize("render", [report.markdown, report.html_report])
def test_both_reports_show_every_hostile_cell(render):
    text = html.unescape(render(hostile_manifest()))
    assert text.count(HOSTILE) >= 20


def test_html_report_escapes_container_text():
    assert "<img src=x" not in report.html_report(hostile_manifest())
