"""What this image's stack can do: versions, TensorRT, trtexec, TF-TRT.

    python3 -m trtkit_steps.probe      (prints one JSON document)

Run once per toolchain image; the host caches the answer by image id.
"""
import importlib
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODULES = ("numpy", "h5py", "tensorflow", "tf_keras", "keras", "tf2onnx", "onnx", "onnxruntime", "tensorrt")
TRTEXEC_DIRS = ("/usr/src/tensorrt/bin", "/workspace/tensorrt/bin", "/opt/tensorrt/bin")


def module_version(name):
    try:
        return getattr(importlib.import_module(name), "__version__", "unknown")
    except Exception:  # absent or broken: either way not usable
        return None


def find_trtexec():
    """trtexec's path: on PATH, else in the folders NVIDIA's tags used over the years."""
    for folder in os.environ.get("PATH", "").split(os.pathsep) + list(TRTEXEC_DIRS):
        path = os.path.join(folder, "trtexec")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def trtexec_version(path):
    """'TensorRT v8601' in the banner -> '8.6.1' (v100100 -> '10.1.0' from TensorRT 10)."""
    proc = subprocess.Popen([path, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    text = proc.communicate()[0]
    marker = "TensorRT v"
    if marker not in text:
        return None
    digits = ""
    for c in text.split(marker, 1)[1]:
        if not c.isdigit():
            break
        digits += c
    n = int(digits)
    if n >= 10000:
        return "%d.%d.%d" % (n // 10000, (n // 100) % 100, n % 100)
    return "%d.%d.%d" % (n // 1000, (n // 100) % 10, n % 100)


def tftrt_available():
    """TF-TRT works only where TensorFlow was built with TensorRT (TF <= 2.17)."""
    try:
        from tensorflow.python.compiler.tensorrt import trt_convert  # noqa: F401
    except Exception:
        return False
    for module, fn in (("tensorflow.compiler.tf2tensorrt._pywrap_py_utils", "get_linked_tensorrt_version"),
                       ("tensorflow.compiler.tf2tensorrt.wrap_py_utils", "get_linked_tensorrt_version"),
                       ("tensorflow.python.compiler.tensorrt.wrap_conversion", "get_linked_tensorrt_version")):
        try:
            linked = getattr(importlib.import_module(module), fn)()
            return tuple(linked)[0] > 0
        except Exception:  # this TF version keeps it elsewhere
            continue
    return False


def probe():
    result = {name: module_version(name) for name in MODULES}
    result["python"] = "%d.%d.%d" % sys.version_info[:3]
    trtexec = find_trtexec()
    result["trtexec"] = {"path": trtexec, "version": trtexec_version(trtexec)} if trtexec else None
    result["tftrt"] = bool(result["tensorflow"]) and tftrt_available()
    result["python_setup_sh"] = os.path.exists("/opt/tensorrt/python/python_setup.sh")
    return result


if __name__ == "__main__":
    print(json.dumps(probe(), sort_keys=True))
