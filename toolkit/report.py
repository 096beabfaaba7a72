"""The build, for people: a terminal summary, report.md and report.html.

All three render the same sections, made once from the manifest. Much of the
manifest came out of a container (names, versions, messages), so every cell is
text: control characters removed (console.plain), then escaped for Markdown or
HTML, and shown in the terminal as rich Text, never as markup.
"""
import html
import re
from pathlib import Path
from typing import NamedTuple

from rich.table import Table
from rich.text import Text

from trtkit_steps import contract

from .console import out, plain
from .events import BenchResult, ExportRoute, Names
from .manifest import Manifest

REPORT_FILES = ("report.md", "report.html")
class Section(NamedTuple):
    id: str             # what code refers to; the title is for people
    title: str
    headers: list[str]
    rows: list[list]
# What could make a link, an image, code, raw HTML, an entity or a new cell (emphasis is harmless: names keep
# their '_'). Written as character references, which every Markdown renderer shows as the character and never
# reads as syntax; a backslash is an escape of '<' in CommonMark only: the original Markdown (Markdown.pl) keeps
# it and passes '\<img src=x onerror=...>' on as HTML.
_MARKDOWN_SPECIAL = re.compile(r"[\\`\[\]<>!|&]")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "×".join("N" if v is None else plain(v) for v in value)
    return "" if value is None else plain(value)


def _markdown(value) -> str:
    return _MARKDOWN_SPECIAL.sub(lambda special: f"&#{ord(special[0])};", _fmt(value))


def _chart(m: Manifest) -> str | None:
    """The chart is always the bench.png beside the report, whatever the container said."""
    return contract.CHART if any(a["name"] == contract.CHART for a in m["artifacts"]) else None


def sections(m: Manifest) -> list[Section]:
    result = [
        Section("build", "Build", ["", ""], [
            ["model", f"{m['model']['path']} ({m['model']['format']}, {m['model']['params']} parameters)"],
            ["model sha256", m["model"]["sha256"]],
            ["image", f"{m['image']['reference']} ({m['image']['id'][:19]})"],
            ["toolchain image", m["image"]["toolchain"]],
            ["target", f"{m['target']['chosen']}: {m['target']['reason']}"],
            *([["ONNX export", export_route(export)]] if (export := m.get("export")) else []),
            ["total time", f"{m['total_seconds']:.1f} s"],
            ["trtkit", f"{m['trtkit_version']}, {m['created']}"],
        ]),
        Section("versions", "Versions in the container", ["package", "version"],
                sorted([k, v] for k, v in m["versions"].items())),
    ]
    if m["names"]:
        result.append(names_section(m["names"]))
    if m.get("warnings"):
        result.append(Section("warnings", "Warnings", ["layer", "warning"],
                              [[w["layer"] or "", w["message"]] for w in m["warnings"]]))
    result.append(Section("steps", "Steps", ["step", "seconds", "ok"],
                          [[s["step"], s["seconds"], s["ok"]] for s in m["steps"]]))
    if m["verification"]:
        result.append(Section("verification", "Verification against Keras",
                              ["artifact", "max abs error", "tolerance", "passed"],
                       [[v["artifact"], v["max_abs_err"], v["atol"] if v["atol"] is not None else "report only",
                         v["passed"]] for v in m["verification"]]))
    result.append(Section("artifacts", "Artifacts", ["file", "kind", "bytes", "sha256"],
                   [[a["name"], a["kind"], a["bytes"], a["sha256"]] for a in m["artifacts"]]))
    precision = m.get("precision")     # absent from manifests of earlier trtkit versions
    if precision:
        result.append(Section("precision", "Reduced precision", ["", ""], _precision_rows(precision)))
    if m["engine"]:
        result.append(Section("engine", "TensorRT engine", ["", ""], sorted([k, v] for k, v in m["engine"].items())))
    if m["bench"]:
        result.append(bench_section(m["bench"]))
    return result


def _precision_rows(precision: dict) -> list[list]:
    rows = []
    if "artifact" in precision:
        kept = "; ".join(f"{k['layer']} ({len(k['nodes'])} nodes: {k['why']})" for k in precision["kept_fp32"])
        rows += [["precision", precision["precision"]], ["rewritten model", f"{precision['artifact']} "
                                                                            f"({precision['library']})"],
                 ["kept FP32", kept or "nothing: every node runs in the reduced precision"]]
    if "recipe" in precision:
        recipe = precision["recipe"]
        rows.append(["engine recipe", f"{recipe['recipe']} from {recipe['onnx']}: {recipe['reason']}"])
    return rows


def export_route(export: ExportRoute) -> str:
    """The route, and each route tried before it with why it failed."""
    failed = "".join(f"; {f['route']} failed first: {f['error']}" for f in export["failed"])
    return f"{export['route']}{failed}"


def names_section(names: Names, title: str = "Node names") -> Section:
    headers = ["role", "Keras", "TF tensor", "frozen graph", "after import_graph_def", "shape", "dtype"]
    rows = ([["input", i["name"], i["keras_tensor"], i["frozen"], i["imported"], i["shape"], i["dtype"]]
             for i in names["inputs"]] +
            [["output", o["name"], o["keras_tensor"], o["frozen"], o["imported"], "", ""] for o in names["outputs"]])
    return Section("names", title, headers, rows)


def bench_section(bench: BenchResult, note: str = "") -> Section:
    headers = ["batch", "framework", "mode", "device", "median ms", "p90 ms", "p99 ms", "per second", "× predict",
               "max abs err"]
    rows = [[r["batch"], r["framework"], r["mode"], r.get("device", "")] +
            ([r["error"], "", "", "", "", ""] if r.get("error") is not None else   # as event_shapes.check_event tells
             [r["median_ms"], r["p90_ms"], r["p99_ms"], r.get("throughput_per_s"), r.get("speedup_vs_predict"),
              r.get("max_abs_err")])
            for r in bench["rows"]]
    return Section("bench", f"Benchmark ({bench['device']}{', ' + note if note else ''})", headers, rows)


def markdown(m: Manifest) -> str:
    lines = [f"# trtkit build report: {_markdown(Path(m['model']['path']).name)}", ""]
    for section_id, title, headers, rows in sections(m):
        lines += [f"## {_markdown(title)}", "", "| " + " | ".join(map(_markdown, headers)) + " |",
                  "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(_markdown(v) for v in row) + " |" for row in rows]
        lines.append("")
        if section_id == "bench" and _chart(m):
            lines += [f"![latency per batch size]({_chart(m)})", ""]
    return "\n".join(lines)


def html_report(m: Manifest) -> str:
    name = html.escape(Path(m["model"]["path"]).name)
    parts = [f"<!doctype html><meta charset='utf-8'><title>trtkit: {name}</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}code{font-size:90%}</style>",
             f"<h1>trtkit build report: {name}</h1>"]
    for section_id, title, headers, rows in sections(m):
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>" +
                     "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows]
        parts.append("</table>")
        if section_id == "bench" and _chart(m):
            parts.append(f"<p><img src='{_chart(m)}' alt='latency per batch size'></p>")
    return "\n".join(parts) + "\n"


def write_all(m: Manifest, folder: Path) -> None:
    for name, render in zip(REPORT_FILES, (markdown, html_report)):
        (folder / name).write_text(render(m))


def print_table(section: Section) -> None:
    _, title, headers, rows = section
    table = Table(title=Text(plain(title)), title_justify="left", show_header=any(headers))
    for header in headers:
        table.add_column(header, overflow="fold")   # names must show whole, even in narrow terminals
    for row in rows:
        table.add_row(*[Text(_fmt(v)) for v in row])
    out.print(table)


def print_summary(m: Manifest, out_dir: Path) -> None:
    """The end of `trtkit build`: artifacts, names, errors, step times."""
    for section in sections(m):
        if section.id in ("names", "steps", "verification", "artifacts", "bench", "precision"):
            print_table(section)
    out.print(Text.assemble(("done", "bold green"), f": {out_dir} (target {m['target']['chosen']}: "
                            f"{m['target']['reason']})"))
    if m["engine"]:
        out.print(Text.assemble(("note", "yellow"), ": ", plain(m["engine"].get("portability_note"))))
