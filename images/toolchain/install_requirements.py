"""Install the pinned in-container packages this Python lacks (runs in docker build).

Pins are per Python minor version (requirements/py3X.txt), because the tags span
Python 3.6 (19.07) to 3.12. Packages that already import are left alone: the
stand-in image and tags whose python_setup.sh brings TensorFlow need nothing.
"""
import importlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# requirement name -> module it provides
MODULES = {"tensorflow-cpu": "tensorflow", "tensorflow": "tensorflow", "tf-keras": "tf_keras", "tf2onnx": "tf2onnx",
           "onnx": "onnx", "onnxruntime": "onnxruntime", "numpy": "numpy", "h5py": "h5py", "matplotlib": "matplotlib",
           "onnxconverter-common": "onnxconverter_common"}
# Installed without their dependencies, which TensorFlow and onnx bring: tf-keras asks for the full
# 'tensorflow' wheel, which would replace tensorflow-cpu; tf2onnx 1.16 (the last for Python 3.9) pins
# protobuf ~=3.20, on which TensorFlow 2.16+ crashes as it loads (segfault in its *_pb2 modules).
NO_DEPS = ("tf-keras", "tf2onnx")


def pinned():
    path = os.path.join(HERE, "requirements", "py%d%d.txt" % sys.version_info[:2])
    if not os.path.exists(path):
        sys.exit("trtkit: no pinned requirements for Python %d.%d (%s)" % (sys.version_info[:2] + (path,)))
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def importable(module):
    try:
        importlib.import_module(module)
        return True
    except Exception:  # a broken install counts as missing
        return False


def tensorflow_1():
    """TF 1.x (python_setup.sh of 19.xx-20.xx tags): trtkit's steps need TensorFlow 2."""
    try:
        return importlib.import_module("tensorflow").__version__.startswith("1.")
    except Exception:  # absent or broken: nothing to replace
        return False


def main():
    if tensorflow_1():
        print("trtkit: replacing TensorFlow 1.x with the pinned TensorFlow 2 (TF-TRT of TF 1.x is not used)")
        subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-y", "tensorflow", "tensorflow-gpu"])
    missing = [req for req in pinned() if not importable(MODULES.get(req.split("=")[0].split("<")[0], req))]
    if not missing:
        print("trtkit: pinned packages already present")
        return
    print("trtkit: installing " + " ".join(missing))
    pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir"]
    with_deps = [r for r in missing if not r.startswith(NO_DEPS)]
    without_deps = [r for r in missing if r.startswith(NO_DEPS)]
    if with_deps:
        subprocess.check_call(pip + with_deps)
    if without_deps:
        subprocess.check_call(pip + ["--no-deps"] + without_deps)


if __name__ == "__main__":
    main()
