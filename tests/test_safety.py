"""Issue 7, end to end: a build never destroys the user's files, and a hostile model stays in its box.

Real CLI, real engine, stand-in image. The hostile models (tests/hostile_models.py) are
Keras 2 .h5 files whose Lambda layer attacks the build from inside the container.
"""
import fcntl
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import STANDIN_ARGS
from daemon_proxy import DaemonProxy

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]
TRUSTED = [*STANDIN_ARGS, "--trust-model"]
REFERENCE = ["reference-inputs.npz", "reference-outputs.npz"]     # in every output (two-stage builds)


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def previous_output(folder: Path) -> Path:
    """A folder as a previous build leaves it (trtkit.json lists model.onnx)."""
    folder.mkdir()
    (folder / "model.onnx").write_text("old")
    (folder / "report.md").write_text("old")
    (folder / "trtkit.json").write_text(json.dumps({"artifacts": [{"name": "model.onnx"}]}))
    return folder


# --- no data loss ---------------------------------------------------------------

def test_out_holding_other_files_is_refused(trtkit, models, tmp_path):
    out = previous_output(tmp_path / "myproject")
    (out / "notes.txt").write_text("mine")
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--out", out)
    assert result.returncode == 16
    assert "holds files trtkit did not write (notes.txt)" in error_line(result) and "--force" in result.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.onnx").read_text() == "old"
    assert listing(tmp_path) == ["myproject", "myproject/model.onnx", "myproject/notes.txt", "myproject/report.md",
                                 "myproject/trtkit.json"]


def test_force_replaces_it_and_a_symlinked_out_is_followed(trtkit, models, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "notes.txt").write_text("mine")
    (tmp_path / "link").symlink_to(real)
    result = trtkit("build", models / "keras3_mlp.keras", *STANDIN_ARGS, "--out", tmp_path / "link", "--force")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "link").is_symlink() and (tmp_path / "link").resolve() == real
    assert sorted(p.name for p in real.iterdir()) == ["model.onnx", *REFERENCE, "report.html", "report.md",
                                                      "reproduce.sh", "trtkit.json"]


@pytest.mark.parametrize("where", ["model folder", "model itself", "cwd", "home", "cache", "root", "inside model"])
def test_out_that_would_delete_precious_things_is_refused_even_with_force(trtkit, trtkit_env, models, tmp_path,
                                                                         where):
    shutil.copytree(models / "origin_savedmodel", tmp_path / "sm")
    home = tmp_path / "home"
    home.mkdir()
    out = {"model folder": tmp_path, "model itself": tmp_path / "sm", "cwd": Path("."), "home": home,
           "cache": Path(trtkit_env["TRTKIT_CACHE"]), "root": Path("/"), "inside model": tmp_path / "sm" / "out"}[where]
    before = listing(tmp_path)
    result = trtkit("build", tmp_path / "sm", *STANDIN_ARGS, "--out", out, "--force",
                    env=dict(trtkit_env, HOME=str(home)))
    assert result.returncode == 16 and "refusing to write the output folder" in error_line(result)
    assert listing(tmp_path) == before


def test_a_concurrent_build_into_the_same_out_fails_clearly(trtkit, models, tmp_path):
    out = tmp_path / "out"
    with open(tmp_path / ".out.trtkit.lock", "w") as lock:
        lock.write("4242")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--out", out)
    assert result.returncode == 16
    assert f"another trtkit build (pid 4242) is writing {out}" in error_line(result)
    assert not out.exists()


def test_two_builds_racing_into_one_out_never_mix(trtkit_env, models, tmp_path):
    """Started together: one publishes, the other fails at once with the lock's message; never both, never a mix."""
    out = tmp_path / "out"
    # --force: both really build (a finished build would be reused in a blink, and the race would not happen)
    racers = [subprocess.Popen([sys.executable, "-m", "trtkit", "build", str(models / model), *STANDIN_ARGS,
                                "--out", str(out), "--force"], cwd=tmp_path, env=trtkit_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for model in ("keras3_mlp.keras", "two_io.h5")]
    results = [(racer.wait(timeout=600), racer.stderr.read()) for racer in racers]
    assert sorted(code for code, _ in results) == [0, 16], results
    loser = next(stderr for code, stderr in results if code == 16)
    assert f"is writing {out}" in loser and "Traceback" not in loser
    manifest = json.loads((out / "trtkit.json").read_text())
    winner = "keras3_mlp.keras" if results[0][0] == 0 else "two_io.h5"
    assert manifest["model"]["path"].endswith(winner)
    assert listing(tmp_path) == ["out", "out/model.onnx", *(f"out/{name}" for name in REFERENCE), "out/report.html",
                                 "out/report.md", "out/reproduce.sh", "out/trtkit.json"]


def test_default_out_of_a_dotted_name_in_an_odd_folder(trtkit, models, tmp_path):
    """A model named '..h5' in a folder with ':' and spaces builds into trtkit-out/model, nothing else."""
    odd = tmp_path / "my models:v2"
    odd.mkdir()
    shutil.copy(models / "keras3_mlp.keras", odd / "..keras")
    result = trtkit("build", odd / "..keras", *STANDIN_ARGS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert listing(tmp_path / "trtkit-out") == ["model", "model/model.onnx", *(f"model/{name}" for name in REFERENCE),
                                                "model/report.html", "model/report.md", "model/reproduce.sh",
                                                "model/trtkit.json"]


def test_a_full_disk_under_out_is_one_line_and_leaves_nothing(trtkit, models, tiny_disk):
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--out", tiny_disk / "out")
    assert result.returncode == 16 and "no space left on the device" in error_line(result)
    assert listing(tiny_disk) == []


# --- nothing the container says is trusted --------------------------------------------

def test_links_planted_by_the_model_are_refused(trtkit, trtkit_env, hostile, tmp_path):
    """model.onnx is not a frozen build's required artifact, but it may come with one: as a link it is refused."""
    result = trtkit("build", hostile / "plant_links.h5", *TRUSTED, "--target", "frozen", "--out", tmp_path / "out")
    assert result.returncode == 17
    assert "returned model.onnx as a link to '/etc/passwd', not a regular file: refused" in error_line(result)
    assert listing(tmp_path) == []
    cache = Path(trtkit_env["TRTKIT_CACHE"]) / "tensorrt"
    key = __import__("hashlib").sha256((hostile / "plant_links.h5").read_bytes()).hexdigest()[:32]
    # Only the regular file with a cache name came back, into this model's own folder: not the link, not notes.txt.
    assert [p for p in listing(cache) if p.startswith(key)] == [key, f"{key}/calibration-{'0' * 32}.cache"]


def test_a_refusal_mid_stream_hangs_up_and_leaves_no_container_or_volume(trtkit, hostile, tmp_path, docker_client):
    """The link comes first and 100 MB after it: the host stops reading there. It must hang up, or the daemon
    keeps the container busy and its removal waits for the API timeout (60 s), then fails with a traceback."""
    def dangling():     # volumes of no container: one removed without its volume (not another build's)
        return {v.name for v in docker_client.volumes.list(filters={"dangling": True})}

    volumes = dangling()
    result = trtkit("build", hostile / "link_before_bulk.h5", *TRUSTED, "--target", "frozen", "--out",
                    tmp_path / "out")
    assert result.returncode == 17 and "returned model.onnx as a link to '/etc/passwd'" in error_line(result)
    assert "warning" not in result.stderr      # the container was removed, not left for doctor --clean
    assert listing(tmp_path) == []
    assert dangling() <= volumes        # the container's anonymous volume went with it


def test_forged_events_escapes_and_markup_are_shown_as_text(trtkit, hostile, tmp_path):
    out = tmp_path / "out"
    result = trtkit("--verbose", "build", hostile / "forge_output.h5", *TRUSTED, "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\x1b" not in result.stderr + result.stdout
    assert "[bold red]markup[/] [/x] closing" in result.stderr      # rich markup shown, not interpreted
    assert len(result.stderr) < 200_000                             # the 3 MB line was cut
    manifest = json.loads(result.stdout)
    assert [a["name"] for a in manifest["artifacts"]] == ["model.onnx", "reference-inputs.npz",
                                                          "reference-outputs.npz"]
    assert "forged" not in [s["step"] for s in manifest["steps"]]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model.onnx", "out", "reference-inputs.npz",
                                                           "reference-outputs.npz", "report.html", "report.md",
                                                           "reproduce.sh", "trtkit.json"]
    report = (out / "report.md").read_text()
    assert "<script>" not in report and "&#60;script&#62;" in report
    assert "&#91;x&#93;(http://e.invalid) &#124; cell" in report
    assert "<script>" not in (out / "report.html").read_text()


def test_a_model_sees_only_itself_and_can_do_nothing(trtkit, trtkit_env, hostile, tmp_path):
    model = tmp_path / "models" / "snoop.h5"
    model.parent.mkdir()
    shutil.copy(hostile / "snoop.h5", model)
    secret = "SECRET-CANARY-4f1c"
    for canary in (tmp_path / "models" / "canary.txt", tmp_path / "home" / ".ssh" / "canary"):
        canary.parent.mkdir(parents=True, exist_ok=True)
        canary.write_text(secret)
    result = trtkit("--verbose", "build", model, *TRUSTED, "--out", tmp_path / "out",
                    env=dict(trtkit_env, HOME=str(tmp_path / "home")))
    assert result.returncode == 0, result.stderr[-2000:]
    snoop = next(line for line in result.stderr.splitlines() if "SNOOP" in line)
    assert "uid=65534 caps=0000000000000000 nnp=1 model_dir=['snoop.h5'] canaries=[]" in snoop
    assert ("writes=/evil-root-write=OSError,/trtkit/scripts/evil=PermissionError,"
            "/trtkit/model/evil=PermissionError network=none") in snoop
    assert secret not in result.stderr + result.stdout


def test_a_model_carrying_code_is_refused_by_default(trtkit, hostile, tmp_path):
    result = trtkit("--verbose", "build", hostile / "snoop.h5", *STANDIN_ARGS, "--out", tmp_path / "out")
    assert result.returncode == 23
    assert "layer 'snoop' is a Lambda" in error_line(result) and "--trust-model" in result.stderr
    assert "SNOOP" not in result.stderr and listing(tmp_path) == []


def test_a_step_that_leaves_early_without_its_artifact_fails(trtkit, hostile, tmp_path):
    result = trtkit("build", hostile / "exit_early.h5", *TRUSTED, "--target", "frozen", "--out", tmp_path / "out")
    assert result.returncode == 17 and "finished without its artifact(s) model.pb" in error_line(result)
    assert listing(tmp_path) == []


def test_failure_evidence_keeps_only_the_known_arrays(trtkit, trtkit_env, models, tmp_path):
    result = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--atol", "1e-15", "--out", tmp_path / "out")
    assert result.returncode == 18
    evidence = Path(error_line(result).split("evidence kept in ")[1])
    assert evidence.parent == Path(trtkit_env["TRTKIT_CACHE"]) / "failures"
    assert sorted(p.name for p in evidence.iterdir()) == ["actual.npz", "expected.npz", "inputs.npz"]
    assert listing(tmp_path) == []


@pytest.mark.parametrize("tamper, message", [
    (lambda m, out: m["artifacts"].append({"name": "../../etc/passwd"}), "lists '../../etc/passwd'"),
    (lambda m, out: (out / "model.onnx").unlink() or (out / "model.onnx").symlink_to("/etc/passwd"),
     "model.onnx is not a regular file"),
])
def test_bench_of_a_tampered_output_is_refused(trtkit, models, tmp_path, tamper, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"onnx")
    manifest = {"model": {"path": str(models / "origin_lstm.h5")}, "target": {"chosen": "onnx"},
                "names": {"inputs": [], "outputs": []}, "artifacts": [{"name": "model.onnx"}]}
    tamper(manifest, out)
    (out / "trtkit.json").write_text(json.dumps(manifest))
    result = trtkit("bench", out, *STANDIN_ARGS)
    assert result.returncode == 11 and message in error_line(result)


# --- the box: limits ----------------------------------------------------------------

def test_a_step_that_hangs_is_stopped_by_the_timeout(trtkit, hostile, tmp_path):
    result = trtkit("build", hostile / "sleep_forever.h5", *TRUSTED, "--timeout", "20", "--out", tmp_path / "out")
    assert result.returncode == 22 and "step inspect did not finish within 20 s" in error_line(result)
    assert listing(tmp_path) == []


def test_forged_step_starts_do_not_extend_the_timeout(trtkit, hostile, tmp_path):
    """The model prints inspect's start every 3 s while it sleeps 90 s: each print once re-armed the deadline."""
    result = trtkit("build", hostile / "keep_alive.h5", *TRUSTED, "--timeout", "20", "--out", tmp_path / "out")
    assert result.returncode == 22 and "step inspect did not finish within 20 s" in error_line(result)
    assert listing(tmp_path) == []


def test_a_model_that_eats_memory_is_stopped_by_the_limit(trtkit, hostile, tmp_path):
    result = trtkit("build", hostile / "eat_memory.h5", *TRUSTED, "--memory", "1500m", "--out", tmp_path / "out")
    assert result.returncode == 21 and "ran out of memory (limit 1.5 GiB)" in error_line(result)
    assert "--memory" in result.stderr and listing(tmp_path) == []


# --- signals and a daemon that goes away ------------------------------------------------

def start_build(model: Path, out: Path, env: dict, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trtkit", "build", str(model), *STANDIN_ARGS, *extra,
                             "--out", str(out)], cwd=out.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_running_build(docker_client, proc, timeout=120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if docker_client.containers.list(filters={"label": "org.trtkit=build", "status": "running"}):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signals_remove_the_container_and_write_nothing(trtkit, trtkit_env, hostile, models, tmp_path, docker_client,
                                                       signum, code):
    proc = start_build(hostile / "sleep_forever.h5", tmp_path / "out", trtkit_env, "--trust-model")
    try:
        assert wait_for_running_build(docker_client, proc), "the build container never ran"
        doctor = trtkit("doctor", "--clean")      # another process's running build is not a leftover
        assert doctor.returncode == 0 and "1 of running builds" in doctor.stdout, doctor.stdout
        assert docker_client.containers.list(filters={"label": "org.trtkit=build", "status": "running"})
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr[-1500:]
    assert f"interrupted by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    assert listing(tmp_path) == []
    if signum == signal.SIGTERM:     # no stale lock or staging folder stands in the way of a rerun
        rerun = trtkit("build", models / "keras3_mlp.keras", *STANDIN_ARGS, "--out", tmp_path / "out")
        assert rerun.returncode == 0, rerun.stderr[-1500:]


def test_the_daemon_dying_mid_build_is_one_line_and_doctor_cleans_up(trtkit, trtkit_env, hostile, tmp_path,
                                                                     docker_client):
    proxy = DaemonProxy(tmp_path / "docker.sock")
    env = dict(trtkit_env, DOCKER_HOST=proxy.url)
    (tmp_path / "work").mkdir()
    proc = start_build(hostile / "sleep_forever.h5", tmp_path / "work" / "out", env, "--trust-model")
    try:
        assert wait_for_running_build(docker_client, proc), "the build container never ran"
        proxy.cut()
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 12, stderr[-1500:]
    assert "lost the Docker daemon during the build" in stderr and "Traceback" not in stderr
    assert listing(tmp_path / "work") == []
    # The container outlived its trtkit process: doctor tells it is a leftover and removes it.
    doctor = trtkit("doctor", "--clean")
    assert doctor.returncode == 0 and "1 left by ended runs (removed)" in doctor.stdout, doctor.stdout
