"""toolkit/reproduce.py: reproduce.sh, quoted and checked."""
import subprocess

from trtkit.docker_runner import Limits
from trtkit.modelfile import ModelRef
from trtkit.plan import BuildPlan


def test_reproduce_sh_of_an_engine_replays_its_own_timing_cache_checked_by_sha256(tmp_path):
    """The script itself, run with stand-ins for docker and trtkit that record what they were given."""
    from trtkit import reproduce
    from trtkit.docker_runner import Limits
    from trtkit.toolchain import Toolchain

    out, bin_dir = tmp_path / "out", tmp_path / "bin"
    out.mkdir(), bin_dir.mkdir()
    (out / "timing.cache").write_bytes(b"tactics")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.onnx", "onnx"), image="trtkit/tensorrt:8.6-py3", settings={
        "strict_timing_cache": True, "exact_batches": [1, 64], "io_precision": "fp16"})
    reproduce.write(out, plan, "engine", Toolchain("t", "sha256:t", {}, "sha256:base", []), Limits(1 << 30))
    (bin_dir / "docker").write_text("#!/bin/sh\necho sha256:base\n")
    (bin_dir / "trtkit").write_text(f"#!/bin/sh\n[ \"$1\" = --version ] || echo \"$@\" > {tmp_path}/args\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stderr
    args = (tmp_path / "args").read_text().split()
    assert args[args.index("--timing-cache") + 1] == str(out / "timing.cache") and "--strict-timing-cache" in args
    assert args[args.index("--exact-batches") + 1] == "1,64" and args[args.index("--io-precision") + 1] == "fp16"
    (out / "timing.cache").write_bytes(b"other tactics")
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert ran.returncode == 1 and "not the timing cache this build ended with" in ran.stderr


def test_reproduce_sh_checks_the_timing_cache_in_a_folder_whose_name_has_backslashes_quotes_and_dollars(tmp_path):
    """/bin/sh's echo (dash's) turns \\t in a path into a tab: the sha256 check must get the path as it is."""
    from trtkit import reproduce
    from trtkit.docker_runner import Limits
    from trtkit.toolchain import Toolchain

    out, bin_dir = tmp_path / "builds\\test 'a' \"$HOME\"" / "out", tmp_path / "bin"
    out.mkdir(parents=True), bin_dir.mkdir()
    (out / "timing.cache").write_bytes(b"tactics")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    plan = BuildPlan(model=ModelRef(tmp_path / "model.onnx", "onnx"), image="trtkit/tensorrt:8.6-py3")
    reproduce.write(out, plan, "engine", Toolchain("t", "sha256:t", {}, "sha256:base", []), Limits(1 << 30))
    (bin_dir / "docker").write_text("#!/bin/sh\necho sha256:base\n")
    (bin_dir / "trtkit").write_text("#!/bin/sh\n[ \"$1\" = --version ] || for a; do printf '%s\\n' \"$a\"; done "
                                    f"> {tmp_path}/args\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert args[args.index("--timing-cache") + 1] == str(out / "timing.cache")


def test_a_model_name_with_a_line_break_stays_inside_reproduce_sh_comments(tmp_path):
    """reproduce.sh names the model in a comment; a file name is any bytes but '/' and NUL, so a line break in it
    must not end the comment and make the rest of the name a command the script runs."""
    import subprocess

    from trtkit import reproduce
    from trtkit.toolchain import Toolchain
    out, bin_dir = tmp_path / "out", tmp_path / "bin"
    out.mkdir(), bin_dir.mkdir()
    model = tmp_path / "model\ntouch pwned\n.h5"
    model.write_bytes(b"h5")
    plan = BuildPlan(model=ModelRef(model, "h5"), image="trtkit/standin:19.07-py3")
    reproduce.write(out, plan, "onnx", Toolchain("t", "sha256:t", {}, "sha256:base", []), Limits(1 << 30))
    (bin_dir / "docker").write_text("#!/bin/sh\necho sha256:base\n")
    (bin_dir / "trtkit").write_text(f"#!/bin/sh\n[ \"$1\" = --version ] || printf '%s\\n' \"$2\" > {tmp_path}/model\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    ran = subprocess.run(["sh", str(out / "reproduce.sh"), "again"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "model").read_text() == f"{model}\n"       # the build line still gets the name whole
    assert not (tmp_path / "pwned").exists()
