"""What this image's stack can do: versions, TensorRT, trtexec, TF-TRT.

    python3 -m trtkit_steps.probe      (prints one JSON document)

Run once per toolchain image; the host caches the answer by image id.
"""
import importlib
import json
import os
import re
import sys

from trtkit_steps.trt.trtexec import find_trtexec, trtexec_version

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# polygraphy: the one trtkit ships beside these scripts (Python 3.8 and newer), which engine builds use.
MODULES = ("numpy", "h5py", "tensorflow", "tf_keras", "keras", "tf2onnx", "onnx", "onnxruntime", "tensorrt",
           "polygraphy")


def module_version(name):
    try:
        return getattr(importlib.import_module(name), "__version__", "unknown")
    except Exception:  # absent or broken: either way not usable
        return None


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


def installed_packages():
    """Every installed distribution and its version, by normalized name (PEP 503): what `trtkit lock` pins."""
    try:
        from importlib import metadata  # novermin: Python 3.6 and 3.7 take the except below
        found = [(d.metadata["Name"], d.version) for d in metadata.distributions()]
    except ImportError:  # Python 3.6 and 3.7
        import pkg_resources
        found = [(d.project_name, d.version) for d in pkg_resources.working_set]
    return dict(sorted((re.sub(r"[-_.]+", "-", name).lower(), version) for name, version in found if name))


def probe():
    result = {name: module_version(name) for name in MODULES}
    result["python"] = "%d.%d.%d" % sys.version_info[:3]
    trtexec = find_trtexec()
    result["trtexec"] = {"path": trtexec, "version": ".".join(map(str, trtexec_version(trtexec)))} if trtexec else None
    result["tftrt"] = bool(result["tensorflow"]) and tftrt_available()
    result["python_setup_sh"] = os.path.exists("/opt/tensorrt/python/python_setup.sh")
    result["packages"] = installed_packages()
    return result


if __name__ == "__main__":
    print(json.dumps(probe(), sort_keys=True))
