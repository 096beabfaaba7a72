"""The project file and the matrix: parsing, unknown keys, overrides, expansion and bounded parallelism
(no Docker: the builds are recorded, or stand-in children), then a real matrix on the Docker engine."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import STANDIN
from typer.testing import CliRunner

from trtkit import matrix, session
from trtkit.cli import app
from trtkit.errors import TrtkitError
from trtkit.modelfile import HDF5_SIGNATURE, ModelRef
from trtkit.plan import BuildPlan, GpuRequest
from trtkit.project import Cell

PROJECT = """
image = "trtkit/standin"
tags = ["19.07-py3", "24.05-py3"]
targets = ["onnx", "frozen"]
gpus = "none"

[models.origin]
path = "models/origin.h5"
precisions = ["fp32", "fp16"]
shapes = ["lstm_1_input:1/64/1024"]
sample_data = "data/sample.npz"
timing_cache = "data/timing.cache"

[models.cnn]
path = "models/cnn.h5"
tags = ["19.07-py3"]
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with fake .h5 models (only their signature is read here); the cwd is elsewhere."""
    folder = tmp_path / "project"
    (folder / "models").mkdir(parents=True)
    (folder / "data").mkdir()
    for name in ("origin.h5", "cnn.h5"):
        (folder / "models" / name).write_bytes(HDF5_SIGNATURE + b"\0" * 64)
    (folder / "data" / "sample.npz").write_bytes(b"PK")
    (folder / "data" / "timing.cache").write_bytes(b"tactics")
    (folder / "trtkit.toml").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.fixture
def recorded(monkeypatch):
    """What the build command hands on: a single plan (session.build) or the matrix (matrix.run)."""
    calls: dict = {}

    def one(plan):
        calls["one"] = plan
        raise TrtkitError("recorded", exit_code=99)

    def many(builds, slots, json_output):
        calls["matrix"], calls["slots"] = builds, list(slots)

    monkeypatch.setattr(session, "build", one)
    monkeypatch.setattr(matrix, "run", many)
    return calls


def invoke(*args):
    return CliRunner().invoke(app, ["build", *map(str, args)])


def labels(calls):
    return [(cell.model, cell.tag, cell.target, cell.precision) for cell, _ in calls["matrix"]]


def test_the_matrix_is_models_by_tags_by_targets_by_precisions(project, recorded):
    result = invoke("--project", project / "trtkit.toml")
    assert result.exit_code == 0, result.output
    assert labels(recorded) == [("origin", tag, target, precision) for tag in ("19.07-py3", "24.05-py3")
                                for target in ("onnx", "frozen") for precision in ("fp32", "fp16")] + \
        [("cnn", "19.07-py3", target, "fp32") for target in ("onnx", "frozen")]
    cell, plan = recorded["matrix"][0]
    assert plan.model.path == project / "models" / "origin.h5"            # relative to the project file
    assert plan.settings["sample_data"] == project / "data" / "sample.npz"
    assert plan.settings["timing_cache"] == project / "data" / "timing.cache"
    assert plan.image == "trtkit/standin:19.07-py3" and plan.settings["shapes"] == {"lstm_1_input": [1, 64, 1024]}
    assert plan.out_dir == project / "trtkit-out" / "origin" / "19.07-py3-onnx-fp32"
    assert len({p.out_dir for _, p in recorded["matrix"]}) == 10, "every build has its own folder"
    cnn = recorded["matrix"][-1][1]
    assert cnn.settings["shapes"] == {} and cnn.settings["sample_data"] is None, \
        "one model's settings are not another's"
    assert recorded["slots"] == [None] * len(recorded["slots"]) and 1 <= len(recorded["slots"]) <= 4


def test_given_options_override_the_file_and_defaults_do_not(project, recorded):
    result = invoke("--project", project / "trtkit.toml", "--tag", "25.01-py3", "--target", "onnx",
                    "--out", "elsewhere", "--gpus", "0,1", "--jobs", "1", "--opset", "15")
    assert result.exit_code == 0, result.output
    assert labels(recorded) == [("origin", "25.01-py3", "onnx", "fp32"), ("origin", "25.01-py3", "onnx", "fp16"),
                                ("cnn", "25.01-py3", "onnx", "fp32")]
    assert all(p.settings["opset"] == 15 and p.image == "trtkit/standin:25.01-py3" for _, p in recorded["matrix"])
    assert recorded["matrix"][0][1].out_dir == Path("elsewhere/origin/25.01-py3-onnx-fp32")
    assert recorded["slots"] == ["0"]      # --jobs 1 of two GPUs


def test_a_tilde_in_out_is_the_home_folder_for_the_logs_too(project, recorded, monkeypatch, tmp_path):
    """--out=~/builds reaches trtkit unexpanded; the logs beside each build went to a folder named '~' here."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert invoke("--project", project / "trtkit.toml", "--out=~/builds").exit_code == 0
    cell, plan = recorded["matrix"][0]
    assert plan.out_dir == cell.values["out"] == tmp_path / "home" / "builds" / "origin" / "19.07-py3-onnx-fp32"
    assert matrix.Run(cell, plan).log.parent == tmp_path / "home" / "builds" / "origin"


def test_a_project_of_one_build_runs_as_a_plain_build(project, recorded):
    (project / "trtkit.toml").write_text('tags = "19.07-py3"\ntargets = "onnx"\n[models.cnn]\npath = "models/cnn.h5"\n')
    result = invoke("--project", project / "trtkit.toml")
    assert result.exit_code == 99 and "matrix" not in recorded
    assert recorded["one"].out_dir == project / "trtkit-out" / "cnn" / "19.07-py3-onnx-fp32"


def test_the_project_is_found_in_the_current_folder_or_pyproject(project, recorded, monkeypatch):
    monkeypatch.chdir(project)
    assert invoke().exit_code == 0 and len(recorded["matrix"]) == 10
    (project / "trtkit.toml").rename(project / "pyproject.toml")
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.trtkit]\n" +
                                            text.replace("[models.", "[tool.trtkit.models."))
    assert invoke().exit_code == 0 and len(recorded["matrix"]) == 10
    (project / "pyproject.toml").write_text(text.replace("[models.", "[tool.trtkit.models.") + "colour = 'red'\n")
    assert "unknown key 'colour' in [tool.trtkit.models.cnn] in" in " ".join(invoke().output.replace("│", " ").split())
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    result = invoke()
    assert result.exit_code == 2 and "give MODEL, or a project file" in result.output


@pytest.mark.parametrize("tool", ['tool = "trtkit"', 'tool = ["trtkit"]', "[tool]\ntrtkit = 1"])
def test_a_pyproject_whose_tool_is_no_table_is_a_usage_error(project, recorded, monkeypatch, tool):
    monkeypatch.chdir(project)
    (project / "trtkit.toml").unlink()
    (project / "pyproject.toml").write_text(tool + "\n")
    assert invoke().exit_code == 2      # no project here, or the one below
    result = invoke("--project", project / "pyproject.toml")
    assert result.exit_code == 2 and "has no [tool.trtkit] table" in result.output, result.output
    assert not recorded


@pytest.mark.parametrize("edit, says", [
    (lambda t: t.replace("precisions =", "precison ="), "unknown key 'precison' in [models.origin] in"),
    (lambda t: t.replace("precisions =", "precison ="), "(did you mean 'precisions'?)"),
    (lambda t: "colour = 'red'\n" + t, "unknown key 'colour' in the top level of"),
    (lambda t: "force = true\n" + t, "unknown key 'force'"),                 # an option of one invocation
    (lambda t: t.replace('tags = ["19.07-py3"]', 'gpus = "0"'), "'gpus' in [models.cnn]"),
    (lambda t: t.replace('"fp16"', '"fp8"'), "Invalid value for 'precisions' in [models.origin]"),
    (lambda t: t.replace('shapes = ["lstm_1_input:1/64/1024"]', 'shapes = "x:1/2/3"'), "expected a list"),
    (lambda t: t.replace('gpus = "none"', 'gpus = ["0"]'), "expected one value"),
    (lambda t: "opset = 99\n" + t, "Invalid value for 'opset' in the top level"),
    (lambda t: t.replace("1/64/1024", "64/1"), "expected NAME:MIN/OPT/MAX"),    # options.py's own parser
    (lambda t: t.replace('path = "models/cnn.h5"', ""), "[models.cnn] in"),
    (lambda t: t.replace("[models.cnn]", "[models.'c n']"), "a model is a table named"),
    (lambda t: t + "[[", "cannot read"),
    (lambda t: t.replace('"data/sample.npz"', '"data/none.npz"'), "does not exist"),
])
def test_bad_project_files_are_usage_errors_that_say_where(project, recorded, edit, says):
    (project / "trtkit.toml").write_text(edit(PROJECT))
    result = invoke("--project", project / "trtkit.toml")
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.replace("│", " ").split()), result.output
    assert not recorded, "nothing is built from a bad project file"


def test_builds_that_would_share_a_triton_model_folder_are_refused(project, recorded):
    """Every build of origin would replace DIR/origin, the last to finish winning (or two colliding)."""
    (project / "trtkit.toml").write_text('triton_repo = "triton"\n' + PROJECT)
    result = invoke("--project", project / "trtkit.toml")
    assert result.exit_code == 2 and not recorded, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert "origin 19.07-py3-onnx-fp32 and origin 19.07-py3-onnx-fp16 would both write the Triton model folder" in said
    assert str(project / "triton" / "origin") in "".join(said.split()), said
    (project / "trtkit.toml").write_text(PROJECT + 'triton_repo = "triton"\n')     # cnn's table: one per target
    assert invoke("--project", project / "trtkit.toml", "--target", "onnx").exit_code == 0
    assert [str(p.triton_repo) for _, p in recorded["matrix"]] == ["None"] * 4 + [str(project / "triton")]


def test_model_with_a_project_or_jobs_is_refused(project, recorded):
    result = invoke(project / "models" / "cnn.h5", "--project", project / "trtkit.toml", "--tag", "x")
    assert result.exit_code == 2 and "not both" in result.output
    result = invoke(project / "models" / "cnn.h5", "--tag", "x", "--jobs", "4")      # not silently ignored
    assert result.exit_code == 2 and "leave it out with MODEL" in result.output and not recorded


def test_slots_are_one_per_gpu_or_bounded_jobs():
    assert matrix.slots(GpuRequest("ids", ("0", "1", "2", "3")), None) == ["0", "1", "2", "3"]
    assert matrix.slots(GpuRequest("ids", ("0", "1", "1")), None) == ["0", "1"]
    assert matrix.slots(GpuRequest("ids", ("0", "1", "2")), 2) == ["0", "1"]
    assert matrix.slots(GpuRequest("none"), 3) == [None] * 3
    assert 1 <= len(matrix.slots(GpuRequest("auto"), None)) <= matrix.MAX_DEFAULT_JOBS


def test_a_child_build_has_every_option_and_its_own_gpu(tmp_path):
    plan = BuildPlan(model=ModelRef(Path("/m/origin.h5"), "h5"), image="trtkit/standin:19.07-py3", target=None,
                     settings={"precision": "fp16"}, gpus=GpuRequest("ids", ("2",)), out_dir=tmp_path / "o", force=True)
    command = matrix.child_command(plan)
    assert command[:4] == [sys.executable, "-m", "trtkit", "build"] and command[4] == "/m/origin.h5"
    for option, value in [("--image", "trtkit/standin"), ("--tag", "19.07-py3"), ("--precision", "fp16"),
                          ("--gpus", "2"), ("--out", str(tmp_path / "o"))]:
        assert command[command.index(option) + 1] == value
    assert "--json" in command and "--force" in command and "--target" not in command   # the child chooses


FAKE_CHILD = """
import json, sys, time
print("step one", file=sys.stderr, flush=True)
time.sleep(0.4)
if sys.argv[1] != "0":
    print("error: it broke", file=sys.stderr)
    sys.exit(int(sys.argv[1]))
print(json.dumps({"verification": [{"max_abs_err": 2e-7, "atol": 1e-5, "passed": True}], "reused_from": None}))
"""


def test_the_matrix_runs_one_build_per_gpu_at_a_time(tmp_path, monkeypatch, capsys):
    """Stand-in children: 5 builds on 2 GPUs; the exit code is the first failed build's, in the project's order."""
    codes = [0, 0, 18, 0, 17]
    asked = {}

    def child(plan):
        asked[plan.settings["seed"]] = plan.gpus
        return [sys.executable, "-c", FAKE_CHILD, str(codes[plan.settings["seed"]])]

    monkeypatch.setattr(matrix, "child_command", child)
    builds = [(Cell("m", "t", "onnx", str(i), {"out": tmp_path / "m" / str(i)}),
               BuildPlan(model=ModelRef(Path("/m.h5"), "h5"), image="i:t", settings={"seed": i},
                         out_dir=tmp_path / "m" / str(i)))
              for i in range(len(codes))]
    with pytest.raises(TrtkitError) as failed:
        matrix.run(builds, ["0", "1"], json_output=True)
    assert failed.value.exit_code == 18 and "2 of 5 builds failed" in failed.value.message
    records = json.loads(capsys.readouterr().out)["builds"]
    assert [r["exit_code"] for r in records] == codes
    assert [r["result"] for r in records] == ["verified"] * 2 + ["failed (exit 18)", "verified", "failed (exit 17)"]
    assert records[2]["error"] == "it broke" and records[0]["max_abs_err"] == 2e-7
    assert [asked[i] for i in range(5)] == [GpuRequest("ids", (r["gpu"],)) for r in records]
    assert max_overlap(records) == 2
    for gpu in ("0", "1"):
        assert max_overlap([r for r in records if r["gpu"] == gpu]) == 1, f"GPU {gpu} ran two builds at once"
    assert (tmp_path / "m" / "2.log").read_text() == "step one\nerror: it broke\n"


INTERRUPTED_MATRIX = """
import os, signal, sys, threading
from pathlib import Path
import typer
from trtkit import matrix
from trtkit.console import user_errors
from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan
from trtkit.project import Cell

folder = Path(sys.argv[1])
child = "\\n".join([
    "import signal, sys, time",
    "def stop(signum, frame):",
    "    open(sys.argv[1], 'w').write(signal.Signals(signum).name)",
    "    sys.exit(128 + signum)",
    "signal.signal(signal.SIGINT, stop)",
    "print('started', file=sys.stderr, flush=True)",
    "time.sleep(60)"])
matrix.child_command = lambda plan: [sys.executable, "-c", child, str(folder / f"stopped-{plan.settings['seed']}")]
builds = [(Cell("m", "t", "onnx", str(i), {"out": folder / str(i)}),
           BuildPlan(model=ModelRef(Path("/m.h5"), "h5"), image="i:t", settings={"seed": i}, out_dir=folder / str(i)))
          for i in range(3)]
threading.Timer(2, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    user_errors(lambda: matrix.run(builds, [None, None], json_output=True))()
except typer.Exit as e:
    sys.exit(e.exit_code)
"""


def test_an_interrupted_matrix_stops_its_builds_and_starts_no_more(tmp_path):
    """SIGINT: each running child gets it (a real one then removes its container), the queued build never starts."""
    result = subprocess.run([sys.executable, "-c", INTERRUPTED_MATRIX, str(tmp_path)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 130, result.stderr
    assert "interrupted by SIGINT: the running builds were stopped" in result.stderr
    assert [(tmp_path / f"stopped-{i}").read_text() for i in range(2)] == ["SIGINT", "SIGINT"]
    records = json.loads(result.stdout)["builds"]
    assert [r["exit_code"] for r in records] == [130, 130, None] and records[2]["result"] == "not run", result
    assert not (tmp_path / "2.log").exists() and not (tmp_path / "stopped-2").exists()


def max_overlap(records) -> int:
    """The most builds running at the same moment."""
    edges = sorted([(r["started"], 1) for r in records] + [(r["ended"], -1) for r in records])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_a_matrix_of_four_real_builds(models, trtkit_env, tmp_path):
    """origin_lstm.h5 and cnn_bn.h5 x onnx and frozen on the stand-in image, two at a time; each verified."""
    (tmp_path / "trtkit.toml").write_text(f"""
image = "{STANDIN[0]}"
tags = ["{STANDIN[1]}"]
targets = ["onnx", "frozen"]
gpus = "none"

[models.origin]
path = "{models / 'origin_lstm.h5'}"

[models.cnn]
path = "{models / 'cnn_bn.h5'}"
""")

    def trtkit(*args):
        return subprocess.run([sys.executable, "-m", "trtkit", "build", *args], cwd=tmp_path, env=trtkit_env,
                              capture_output=True, text=True, timeout=1200)

    result = trtkit("--jobs", "2", "--force", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    records = json.loads(result.stdout)["builds"]
    assert [(r["model"], r["target"]) for r in records] == [("origin", "onnx"), ("origin", "frozen"),
                                                             ("cnn", "onnx"), ("cnn", "frozen")]
    assert max_overlap(records) == 2
    for record in records:
        manifest = json.loads((Path(record["out_dir"]) / "trtkit.json").read_text())
        assert record["result"] == "verified" and manifest["reused_from"] is None
        assert manifest["target"]["chosen"] == record["target"] and manifest["options"]["gpus"] == "none"
        assert manifest["verification"] and all(check["passed"] for check in manifest["verification"])
        assert Path(record["log"]).is_file()

    again = trtkit()            # the same matrix: every build reused from the cache, and the table
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [line for line in again.stdout.splitlines() if "verified (reused)" in line]
    assert len(rows) == 4 and "max error" in again.stdout, again.stdout
