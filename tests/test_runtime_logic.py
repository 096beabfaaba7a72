"""trtkit.runtime without a GPU: its pure logic, its checks before loading, and its lanes on a simulated driver.

The simulation (FakeCuda, FakeLoaded below) runs every copy and every "kernel" at once, on the host, and
records instead of running while a stream captures; it checks what the runtime asks of CUDA and TensorRT
(sizes, offsets, casts, shapes, graph reuse), not timing or concurrency on a real device.
"""
import ctypes
import functools
import gc
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

from trtkit import runtime
from trtkit.runtime import (
    Built,
    Engine,
    GraphCache,
    Host,
    IncompatibleEngine,
    LanePool,
    ProfileRange,
    TensorSpec,
    compat,
)
from trtkit.runtime import cuda as runtime_cuda
from trtkit.runtime import engine as engine_module
from trtkit.runtime import trt as trt_module
from trtkit.runtime.lane import _Lane

REPO = Path(__file__).resolve().parents[1]
RUNTIME_DIR = REPO / "toolkit" / "runtime"
RUNTIME_FILES = sorted(RUNTIME_DIR.glob("*.py"))
# The package's modules that reach the driver: the simulation replaces it in each.
CUDA_USERS = [m for name, m in sorted(sys.modules.items())
              if name.startswith("trtkit.runtime.") and getattr(m, "cuda", None) is runtime_cuda]
H100 = ("NVIDIA H100 80GB HBM3", "9.0")
LSTM_ROW = 11 * 192   # the origin model's input: (batch, 11, 192) float32
F32, F16 = np.dtype(np.float32), np.dtype(np.float16)


def spec(name, keras=None, dtype=F32):
    return TensorSpec(name, keras, runtime.user_dtype(np.dtype(dtype)), np.dtype(dtype))


def lstm_profile(low=1, opt=1024, high=100000):
    return {"lstm_1_input": ProfileRange((low, 11, 192), (opt, 11, 192), (high, 11, 192))}


# --- importing and shipping ---------------------------------------------------

def test_import_needs_neither_tensorrt_nor_a_driver():
    code = ("import sys; sys.modules['tensorrt'] = None\n"   # None: any import of tensorrt fails
            "import trtkit.runtime as r\n"
            "assert r.cuda._library == [], 'libcuda was loaded at import'\n"
            "print(r.Engine.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Engine"


def test_the_package_imports_under_its_box_name(tmp_path):
    """As trtkit ships it into a container, beside a script: trtkit_runtime, no trtkit package around it."""
    shutil.copytree(RUNTIME_DIR, tmp_path / "trtkit_runtime", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import trtkit_runtime as r; print(r.Engine.__module__, r.cuda.__name__, r.select_profile.__module__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["trtkit_runtime.engine", "trtkit_runtime.cuda", "trtkit_runtime.shapes"]


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: p.name)
def test_parses_as_python_38(path):
    import ast
    tree = ast.parse(path.read_text(), feature_version=(3, 8))
    futures = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "__future__"]
    assert futures and futures[0].names[0].name == "annotations", "annotations must stay unevaluated on 3.8"
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= set(sys.stdlib_module_names) | {"numpy", "tensorrt"}, imported


def test_compiles_with_a_real_python_38_when_there_is_one(tmp_path):
    found = sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python3.8")) + [shutil.which("python3.8")]
    python38 = next((p for p in found if p and ".pyenv/shims" not in str(p)), None)
    if python38 is None:
        pytest.skip("no Python 3.8 on this machine")
    for path in RUNTIME_FILES:
        out = subprocess.run([str(python38), "-m", "py_compile", str(path)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)})
        assert out.returncode == 0, out.stderr


# --- where it was built, where it would run ------------------------------------

@pytest.mark.parametrize("version, release", [("8.6.1", (8, 6, 1)), ("8.6.1.6", (8, 6, 1)), ("8.6", (8, 6, 0)),
                                              ("10.0.0b6", (10, 0, 0)), ("10.16.0.72", (10, 16, 0))])
def test_tensorrt_release(version, release):
    assert runtime.tensorrt_release(version) == release


def built(tensorrt="8.6.1", gpu=H100[0], capability=H100[1]):
    return Built(tensorrt, gpu, capability, "/models/origin_lstm.h5", "nvcr.io/nvidia/tensorrt:23.10-py3")


def test_the_same_release_and_gpu_load_silently():
    assert runtime.compatibility(built("8.6.1"), Host("8.6.1.6", *H100)) is None


def test_another_tensorrt_names_both_ways_out():
    with pytest.raises(IncompatibleEngine) as e:
        runtime.compatibility(built("8.6.1"), Host("10.0.1", *H100))
    message = str(e.value)
    assert "built with TensorRT 8.6.1 and this host has TensorRT 10.0.1" in message
    assert "Install TensorRT 8.6.1 here (pip install 'tensorrt==8.6.1.*')" in message
    assert ("trtkit build /models/origin_lstm.h5 --target engine --image REPO --tag <a tag with TensorRT 10.0.1> "
            "--gpus all") in message


def test_another_compute_capability_cannot_load():
    with pytest.raises(IncompatibleEngine) as e:
        runtime.compatibility(built(), Host("8.6.1", "NVIDIA A100-SXM4-80GB", "8.0"))
    message = str(e.value)
    assert "built for sm 9.0 and this GPU is sm 8.0" in message
    assert "here TensorRT 8.6.1 on NVIDIA A100-SXM4-80GB, sm 8.0" in message
    assert ("trtkit build /models/origin_lstm.h5 --target engine --image nvcr.io/nvidia/tensorrt --tag 23.10-py3 "
            "--gpus all") in message


@pytest.mark.parametrize("image", ["nvcr.io/nvidia/tensorrt:23.10-py3", "localhost:5000/trt:8.6-py3",
                                   "trtkit/tensorrt@sha256:" + "a" * 64])
def test_the_rebuild_command_names_the_image_as_trtkit_build_takes_it(image):
    """The runtime ships alone, so it spells the image its own way: the same as reproduce.sh and trtkit check."""
    from trtkit import options
    args = options.image_arguments(image)
    assert compat.image_arguments(image) == " ".join(args)
    assert options.image_reference(args[1], args[3] if len(args) > 2 else None) == image


def test_another_gpu_of_the_same_capability_loads_with_a_warning():
    warning = runtime.compatibility(built(), Host("8.6.1", "NVIDIA H100 PCIe", "9.0"))
    assert warning.startswith("the engine loads here, but it was tuned on NVIDIA H100 80GB HBM3 (sm 9.0), "
                              "not NVIDIA H100 PCIe: rebuild on this GPU")


@pytest.mark.parametrize("version, supported", [("8.5.3.1", False), ("8.6.0", True), ("10.0.1", True),
                                                ("11.0.0", True)])
def test_tensorrt_86_or_newer(version, supported):
    if supported:
        runtime.require_supported_tensorrt(version)
    else:
        with pytest.raises(IncompatibleEngine, match="needs TensorRT 8.6 or newer"):
            runtime.require_supported_tensorrt(version)


def make_output(folder, plan=b"not really an engine", tensorrt="8.6.1", gpu=H100, sha256=None, target="engine"):
    """A trtkit output folder as `trtkit build --target engine` leaves it (the manifest's parts the runtime reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.plan").write_bytes(plan)
    artifacts = [{"name": "model.onnx", "kind": "onnx", "sha256": "0" * 64}]
    if target == "engine":
        artifacts.append({"name": "model.plan", "kind": "engine",
                          "sha256": sha256 or hashlib.sha256(plan).hexdigest()})
    manifest = {
        "target": {"chosen": target},
        "model": {"path": "/models/origin_lstm.h5"},
        "image": {"reference": "nvcr.io/nvidia/tensorrt:23.10-py3"},
        "earlier_build": None,
        "artifacts": artifacts,
        "engine": {"tensorrt": tensorrt, "gpu": gpu[0], "compute_capability": gpu[1],
                   "profiles": {"lstm_1_input": {"min": [1, 11, 192], "opt": [1024, 11, 192],
                                                 "max": [100000, 11, 192]}}} if target == "engine" else None,
        "names": {"inputs": [{"name": "lstm_1_input", "keras_tensor": "lstm_1_input:0"}],
                  "outputs": [{"name": "dense_3", "keras_tensor": "dense_3/Sigmoid:0"}]},
    }
    (folder / "trtkit.json").write_text(json.dumps(manifest))
    return folder


def probe(tensorrt, gpu=H100):
    return lambda device: Host(tensorrt, *gpu)


def test_engine_on_another_tensorrt_fails_before_tensorrt_is_touched(tmp_path):
    out = make_output(tmp_path / "model")
    with pytest.raises(IncompatibleEngine, match="built with TensorRT 8.6.1 and this host has TensorRT 10.0.1"):
        Engine(out, _probe=probe("10.0.1"))
    assert "tensorrt" not in sys.modules


def test_engine_on_another_gpu_fails_before_tensorrt_is_touched(tmp_path):
    out = make_output(tmp_path / "model")
    with pytest.raises(IncompatibleEngine, match="built for sm 9.0 and this GPU is sm 8.0"):
        Engine(out / "model.plan", _probe=probe("8.6.1", ("NVIDIA A100-SXM4-80GB", "8.0")))
    assert "tensorrt" not in sys.modules


def test_a_plan_the_manifest_does_not_describe_is_refused(tmp_path):
    out = make_output(tmp_path / "model", sha256="f" * 64)
    with pytest.raises(IncompatibleEngine, match="sha256 differs"):
        Engine(out, _probe=probe("8.6.1"))


def test_an_older_tensorrt_is_refused_even_when_it_built_the_engine(tmp_path):
    out = make_output(tmp_path / "model", tensorrt="8.5.3.1")
    with pytest.raises(IncompatibleEngine, match="needs TensorRT 8.6 or newer"):
        Engine(out, _probe=probe("8.5.3.1"))


def test_past_the_checks_tensorrt_itself_is_needed(tmp_path):
    """Another H100 model: a warning, then loading, which needs TensorRT (not installed in the test venv)."""
    out = make_output(tmp_path / "model")
    with pytest.warns(RuntimeWarning, match="tuned on NVIDIA H100 80GB HBM3"), \
            pytest.raises(ImportError, match=r"pip install 'trtkit\[runtime\]'"):
        Engine(out, _probe=probe("8.6.1", ("NVIDIA H100 PCIe", "9.0")))


def test_check_false_skips_the_checks(tmp_path):
    out = make_output(tmp_path / "model", sha256="f" * 64)
    with pytest.raises(ImportError, match="TensorRT's Python package"):
        Engine(out, check=False, _probe=probe("10.0.1"))


@pytest.mark.parametrize("option", [{"graph_cache_size": 0}, {"max_lanes": 0}, {"stream_chunk_bytes": 0},
                                    {"small_batch_bytes": -1}, {"fill_threads": 0}])
def test_options_are_checked_first(tmp_path, option):
    with pytest.raises(ValueError, match="1 or more|at least 1"):
        Engine(tmp_path / "missing.plan", **option)


def test_locate(tmp_path):
    out = make_output(tmp_path / "model")
    assert runtime.locate(str(out)) == (str(out / "model.plan"), str(out / "trtkit.json"))
    lone = tmp_path / "elsewhere" / "lstm.plan"
    lone.parent.mkdir()
    lone.write_bytes(b"x")
    assert runtime.locate(str(lone)) == (str(lone), None)
    with pytest.raises(FileNotFoundError, match="has no model.plan"):
        runtime.locate(str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="no engine at"):
        runtime.locate(str(tmp_path / "missing"))


def test_read_manifest(tmp_path):
    out = make_output(tmp_path / "model")
    manifest = runtime.read_manifest(str(out / "trtkit.json"), "model.plan")
    assert manifest.built == built()
    assert manifest.names["inputs"][0]["keras_tensor"] == "lstm_1_input:0"
    assert runtime.read_manifest(str(out / "trtkit.json"), "other.plan") is None   # not this manifest's engine
    onnx = make_output(tmp_path / "onnx", target="onnx")
    assert runtime.read_manifest(str(onnx / "trtkit.json"), "model.plan") is None


def test_a_manifest_without_the_engine_record_is_refused(tmp_path):
    out = make_output(tmp_path / "model")
    manifest = json.loads((out / "trtkit.json").read_text())
    manifest["engine"] = {"tensorrt": "8.6.1"}
    (out / "trtkit.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleEngine, match="lacks the engine's TensorRT version and GPU"):
        runtime.read_manifest(str(out / "trtkit.json"), "model.plan")


# --- names --------------------------------------------------------------------

NAMES = {"inputs": [{"name": "text", "keras_tensor": "text:0"}, {"name": "image", "keras_tensor": "image:0"}],
         "outputs": [{"name": "dense_3", "keras_tensor": "dense_3/Sigmoid:0"}, {"name": "aux", "keras_tensor": None}]}


def test_specs_follow_keras_order_and_keep_what_the_manifest_does_not_name():
    io = [("image", True, F16), ("text", True, np.dtype(np.int32)), ("aux", False, F32), ("dense_3", False, F16),
          ("extra", False, F32)]
    inputs, outputs = runtime.tensor_specs(io, NAMES)
    assert [s.name for s in inputs] == ["text", "image"]
    assert [s.name for s in outputs] == ["dense_3", "aux", "extra"]
    assert inputs[1] == TensorSpec("image", "image:0", F32, F16)   # float16 at the engine, float32 for the user
    assert outputs[0].dtype == F32 and outputs[0].engine_dtype == F16
    assert inputs[0].dtype == np.int32
    assert runtime.tensor_specs(io, None)[0][0].name == "image"    # no manifest: the engine's order


def test_a_manifest_naming_tensors_the_engine_lacks_is_refused():
    with pytest.raises(IncompatibleEngine, match=r"names inputs \['text'\] that the engine does not have"):
        runtime.tensor_specs([("image", True, F32), ("dense_3", False, F32)], NAMES)


def test_aliases():
    assert spec("lstm_1_input", "lstm_1_input:0").aliases == ("lstm_1_input", "lstm_1_input:0")
    assert spec("dense_3", "dense_3/Sigmoid:0").aliases == ("dense_3", "dense_3/Sigmoid:0", "dense_3/Sigmoid")
    assert spec("x").aliases == ("x",)


def test_one_input_by_array_list_or_nested_lists():
    inputs = [spec("lstm_1_input", "lstm_1_input:0")]
    x = np.zeros((2, 11, 192), np.float32)
    assert runtime.map_inputs(x, inputs)["lstm_1_input"] is x
    assert runtime.map_inputs([x], inputs)["lstm_1_input"] is x
    assert runtime.map_inputs([[1.0, 2.0]], inputs)["lstm_1_input"].shape == (1, 2)


@pytest.mark.parametrize("key", ["lstm_1_input", "lstm_1_input:0"])
def test_one_input_by_engine_or_keras_name(key):
    x = np.zeros((2, 11, 192), np.float32)
    assert runtime.map_inputs({key: x}, [spec("lstm_1_input", "lstm_1_input:0")]) == {"lstm_1_input": x}


def test_several_inputs_by_position_or_name():
    inputs = [spec("text", "text:0"), spec("image", "image:0")]
    a, b = np.zeros((2, 3)), np.ones((2, 4))
    assert runtime.map_inputs((a, b), inputs) == {"text": a, "image": b}
    assert runtime.map_inputs({"image:0": b, "text": a}, inputs) == {"text": a, "image": b}


@pytest.mark.parametrize("x, message", [
    ({"text": 1}, "no data for input image (Keras image:0)"),
    ({"text": 1, "image": 2, "label": 3}, "'label' is not an input of the engine; its inputs are text (Keras text:0)"),
    ({"text": 1, "text:0": 1, "image": 2}, "input text (Keras text:0) is given twice"),
    ([1, 2, 3], "the engine has 2 inputs, text (Keras text:0), image (Keras image:0): pass a list of 2 arrays"),
    (np.zeros((2, 3)), "the engine has 2 inputs"),
])
def test_inputs_that_do_not_match(x, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        runtime.map_inputs(x, [spec("text", "text:0"), spec("image", "image:0")])


def test_outputs_like_keras():
    outputs = [spec("dense_3"), spec("aux")]
    results = {"aux": np.ones(1), "dense_3": np.zeros(1)}
    assert runtime.arrange_outputs(results, outputs[:1], as_dict=False) is results["dense_3"]
    assert runtime.arrange_outputs(results, outputs, as_dict=False) == [results["dense_3"], results["aux"]]
    assert list(runtime.arrange_outputs(results, outputs, as_dict=True)) == ["dense_3", "aux"]


def test_dtypes_cast_within_a_kind_only():
    inputs = [spec("a", dtype=F16), spec("b"), spec("c", dtype=np.int32)]
    runtime.check_dtypes({"a": np.zeros(1, np.float32), "b": np.zeros(1, np.float64), "c": np.zeros(1, np.int64)},
                         inputs)
    with pytest.raises(TypeError, match="input c is float32; the engine takes int32"):
        runtime.check_dtypes({"a": np.zeros(1), "b": np.zeros(1), "c": np.zeros(1, np.float32)}, inputs)


# --- shapes, profiles, chunks -------------------------------------------------

def test_batch_of():
    assert runtime.batch_of({"a": (4, 2), "b": (4,)}) == 4
    with pytest.raises(ValueError, match="different batch sizes"):
        runtime.batch_of({"a": (4, 2), "b": (5,)})
    with pytest.raises(ValueError, match="needs a batch dimension"):
        runtime.batch_of({"a": ()})


def test_select_profile():
    narrow = {"x": ProfileRange((1, 8), (16, 8), (64, 8))}
    wide = {"x": ProfileRange((1, 8), (512, 8), (4096, 8))}
    other = {"x": ProfileRange((1, 16), (1, 16), (8, 16))}
    profiles = [other, wide, narrow]
    assert runtime.select_profile(profiles, {"x": (32, 8)}) == 2      # both hold it: the narrower one
    assert runtime.select_profile(profiles, {"x": (1000, 8)}) == 1
    assert runtime.select_profile(profiles, {"x": (10000, 8)}) == 1   # no profile holds it: the longest runs
    assert runtime.select_profile(profiles, {"x": (3, 16)}) == 0
    with pytest.raises(ValueError, match=r"fit none of the engine's optimization profiles \(profile 0: x \[1, 16\]"):
        runtime.select_profile(profiles, {"x": (3, 12)})
    with pytest.raises(ValueError, match="fit none"):
        runtime.select_profile(profiles, {"x": (3, 8, 1)})


def test_a_profile_for_exactly_the_batch_wins_over_the_full_range():
    full = {"x": ProfileRange((1, 8), (1024, 8), (100000, 8))}
    profiles = [full] + [{"x": ProfileRange((b, 8), (b, 8), (b, 8))} for b in (1, 64)]   # build --exact-batches 1,64
    assert [runtime.select_profile(profiles, {"x": (b, 8)}) for b in (1, 2, 64, 65, 100000)] == [1, 0, 2, 0, 0]
    plan = runtime.plan_call(profiles, {"x": (64, 8)}, 32, 16 << 20, 32 << 20)
    assert (plan.profile, plan.chunks, plan.buffer_rows, plan.small) == (2, [(0, 64)], 64, True)


def test_small_batches_are_one_run_from_buffers_made_for_the_largest_small_batch():
    plan = runtime.plan_call([lstm_profile()], {"lstm_1_input": (64, 11, 192)}, LSTM_ROW * 4, 16 << 20, 32 << 20)
    assert plan == runtime.CallPlan(0, [(0, 64)], (16 << 20) // (LSTM_ROW * 4), small=True)
    assert plan.buffer_rows == 1985


def test_large_batches_stream_in_chunks_of_the_chunk_bytes_and_one_shorter():
    """Two shapes for TensorRT, not one per run: each change of shape makes the stream wait."""
    plan = runtime.plan_call([lstm_profile()], {"lstm_1_input": (100000, 11, 192)}, LSTM_ROW * 4, 16 << 20, 64 << 20)
    assert not plan.small
    assert plan.buffer_rows == (64 << 20) // (LSTM_ROW * 4) == 7943
    sizes = [stop - start for start, stop in plan.chunks]
    assert sizes == [7943] * 12 + [4684] and sum(sizes) == 100000
    assert all(a[1] == b[0] for a, b in zip(plan.chunks, plan.chunks[1:]))


def test_batches_beyond_the_profile_are_split_even_when_small():
    profile = {"x": ProfileRange((1, 4), (8, 4), (64, 4))}
    plan = runtime.plan_call([profile], {"x": (1000, 4)}, 16, 16 << 20, 32 << 20)
    assert not plan.small and plan.buffer_rows == 64
    assert max(stop - start for start, stop in plan.chunks) <= 64 and plan.chunks[-1][1] == 1000


@pytest.mark.parametrize("total, rows, low, sizes", [
    (10, 10, 1, [10]), (10, 4, 1, [4, 4, 2]), (9, 4, 3, [3, 3, 3]), (12, 4, 4, [4, 4, 4]), (1, 100, 1, [1]),
    (11, 4, 2, [4, 4, 3]), (9, 4, 2, [4, 3, 2]), (100000, 7943, 1, [7943] * 12 + [4684]),
    # rows at the profile's smallest batch (a few rows fill a chunk): the rest joins longer runs, up to the max
    (12, 8, 8, [12]), (70, 8, 8, [8, 9, 9, 9, 8, 9, 9, 9])])
def test_plan_chunks(total, rows, low, sizes):
    chunks = runtime.plan_chunks(total, rows, low, 64)
    assert [stop - start for start, stop in chunks] == sizes
    assert chunks[0][0] == 0 and chunks[-1][1] == total


@pytest.mark.parametrize("total, rows, low, message", [
    (13, 4, 4, "batches of 4 to 4 rows: 13 rows cannot be split"), (2, 8, 3, "2 rows cannot be split"),
    (0, 8, 1, "at least one row")])
def test_plan_chunks_refuses(total, rows, low, message):
    with pytest.raises(ValueError, match=message):
        runtime.plan_chunks(total, rows, low, rows)


def test_a_streamed_batch_within_the_profile_runs_even_where_chunks_of_its_bytes_cannot_split_it():
    """Rows of 12 MiB on a profile of 8 to 64: 64 MiB chunks would be 5 rows, raised to the smallest batch, 8.
    12 rows run once (the buffers are made for them), 70 in eight runs of 8 or 9."""
    profile = {"x": ProfileRange((8, 3, 1024, 1024), (32, 3, 1024, 1024), (64, 3, 1024, 1024))}
    for batch, runs in ((12, [12]), (70, [8, 9, 9, 9, 8, 9, 9, 9])):
        plan = runtime.plan_call([profile], {"x": (batch, 3, 1024, 1024)}, 12 << 20, 16 << 20, 64 << 20)
        assert [stop - start for start, stop in plan.chunks] == runs and plan.buffer_rows == max(8, *runs)


def test_a_batch_between_profiles_runs_on_one_whose_smallest_batch_it_reaches():
    small, large = {"x": ProfileRange((1, 8), (4, 8), (8, 8))}, {"x": ProfileRange((65, 8), (128, 8), (256, 8))}
    plan = runtime.plan_call([small, large], {"x": (30, 8)}, 32, 16 << 20, 64 << 20)
    assert plan.profile == 0 and [stop - start for start, stop in plan.chunks] == [8, 8, 8, 6]
    with pytest.raises(ValueError, match="a batch of 30 is under the smallest batch of every optimization profile"):
        runtime.plan_call([large], {"x": (30, 8)}, 32, 16 << 20, 64 << 20)


def test_stream_rows_stay_within_the_profile():
    assert runtime.stream_rows(8448, 1, 100000, 32 << 20) == 3971
    assert runtime.stream_rows(4, 1, 100000, 32 << 20) == 100000
    assert runtime.stream_rows(1 << 30, 1, 100000, 32 << 20) == 1
    assert runtime.stream_rows(1 << 30, 16, 100000, 32 << 20) == 16


def test_split_rows_for_the_fill_threads():
    assert runtime.split_rows(3971, 8448, 8) == runtime.even_ranges(3971, 8)
    assert runtime.split_rows(10, 100, 8) == [(0, 10)]            # 1 KB: not worth a thread
    assert runtime.split_rows(3, 2 << 20, 8) == [(0, 1), (1, 2), (2, 3)]
    assert runtime.split_rows(1024, 8448, 16) == runtime.even_ranges(1024, 4)   # 8.6 MB: four parts of 2 MB
    assert runtime.even_ranges(10, 3) == [(0, 3), (3, 6), (6, 10)]


@pytest.mark.parametrize("source, target_dtype", [
    (np.arange(24, dtype=np.float32).reshape(4, 6), F32),            # memmove
    (np.arange(24, dtype=np.float64).reshape(4, 6), F32),            # cast
    (np.arange(48, dtype=np.float32).reshape(4, 12)[:, ::2], F32),   # strided source
    (np.arange(24, dtype=np.float32).reshape(4, 6), F16),            # float32 to the engine's float16
])
def test_copy_rows(source, target_dtype):
    target = np.zeros(source.shape, target_dtype)
    runtime.copy_rows(target, source)
    np.testing.assert_array_equal(target, source.astype(target_dtype))


def test_host_view_writes_into_the_buffer():
    buffer = (ctypes.c_byte * 64)()
    view = runtime.host_view(buffer, F16, (2, 3))
    view[:] = [[1, 2, 3], [4, 5, 6]]
    assert np.frombuffer(bytes(buffer)[:12], np.float16).tolist() == [1, 2, 3, 4, 5, 6]


# --- the graph cache and the lane pool ----------------------------------------

def test_graph_cache_evicts_the_least_recently_used_and_frees_it():
    released = []
    cache = GraphCache(2, released.append)
    cache.put("a", "graph a")
    cache.put("b", "graph b")
    assert cache.get("a") == "graph a"       # a is now the most recent
    cache.put("c", "graph c")
    assert released == ["graph b"] and len(cache) == 2 and cache.get("b") is None
    cache.put("c", "graph c2")               # a new graph for a key frees the old one
    assert released == ["graph b", "graph c"]
    cache.clear()
    assert sorted(released[2:]) == ["graph a", "graph c2"] and len(cache) == 0


def test_lane_pool_makes_at_most_its_size_and_reuses_lanes():
    made, busy, most = [], [0], [0]
    lock = threading.Lock()
    pool = LanePool(lambda key: made.append(object()) or made[-1], 2)

    def call(_):
        with pool.lane():
            with lock:
                busy[0] += 1
                most[0] = max(most[0], busy[0])
            time.sleep(0.01)
            with lock:
                busy[0] -= 1

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(call, range(32)))
    assert len(made) == 2 and most[0] == 2


def test_lane_pool_makes_at_most_per_key_lanes_of_a_key_and_runs_at_most_size():
    """One lane a key (a profile, as TensorRT allows one context a profile); at most 2 calls at once in all."""
    made, running, most, lock = [], {}, {"all": 0}, threading.Lock()
    pool = LanePool(lambda key: made.append(key) or (key, len(made)), 2, per_key=1)

    def call(i):
        key = i % 3
        with pool.lane(key) as lane:
            assert lane[0] == key
            with lock:
                running[key] = running.get(key, 0) + 1
                assert running[key] == 1, "two calls on one key's lane"
                most["all"] = max(most["all"], sum(running.values()))
            time.sleep(0.005)
            with lock:
                running[key] -= 1

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(call, range(48)))
    assert sorted(made) == [0, 1, 2] and most["all"] == 2


def test_lane_pool_gives_the_slot_back_when_making_a_lane_fails():
    attempts = itertools.count()

    def factory(key):
        if next(attempts) == 0:
            raise MemoryError("out of device memory")
        return "lane"

    pool = LanePool(factory, 1)
    with pytest.raises(MemoryError):
        with pool.lane():
            pass
    with pool.lane() as lane:
        assert lane == "lane"


def test_lane_pool_close_waits_for_running_calls_then_refuses():
    pool, destroyed, entered, leave = LanePool(lambda key: "lane", 2), [], threading.Event(), threading.Event()

    def running_call():
        with pool.lane():
            entered.set()
            leave.wait(5)

    worker = threading.Thread(target=running_call)
    worker.start()
    entered.wait(5)
    closer = threading.Thread(target=pool.close, args=(destroyed.append,))
    closer.start()
    time.sleep(0.05)
    assert destroyed == []                   # still running
    leave.set()
    worker.join(5)
    closer.join(5)
    assert destroyed == ["lane"]
    with pytest.raises(RuntimeError, match="the Engine is closed"):
        with pool.lane():
            pass


# --- lanes on a simulated driver and engine -------------------------------------

class FakeCuda:
    """runtime_cuda's interface, on the host: device memory is numpy bytes, pinned memory real host memory,
    every stream runs its work at once, and a capturing stream records it for GraphExec to replay."""
    CudaError = runtime_cuda.CudaError

    def __init__(self):
        fake = self
        self.device: dict[int, np.ndarray] = {}
        self.streams: dict[int, object] = {}
        self.graphs: dict[int, list] = {}
        self.destroyed_graphs = 0
        self.launches = 0
        self.page_locked: list[tuple[int, int]] = []   # (start, stop) of the pinned buffers handed out
        self.upload_sources: list[int] = []
        ids = itertools.count(1)

        class DeviceMemory:
            def __init__(self, nbytes):
                self.nbytes, self.ptr = nbytes, next(ids) << 32
                fake.device[self.ptr] = np.zeros(max(nbytes, 1), np.uint8)

            def free(self):
                fake.device.pop(self.ptr, None)
                self.ptr = 0

        class PinnedMemory:
            def __init__(self, nbytes):
                self.nbytes, self.buffer = nbytes, (ctypes.c_byte * max(nbytes, 1))()
                self.ptr = ctypes.addressof(self.buffer)

            def free(self):
                self.ptr = 0

        class Stream:
            def __init__(self):
                self.handle, self.recording = next(ids), None
                fake.streams[self.handle] = self

            def run(self, work):
                if self.recording is None:
                    work()
                else:
                    self.recording.append(work)

            def upload(self, device_ptr, host_ptr, nbytes):
                fake.upload_sources.append(host_ptr)

                def copy():
                    fake.device[device_ptr][:nbytes] = np.frombuffer(ctypes.string_at(host_ptr, nbytes), np.uint8)
                self.run(copy)

            def download(self, host_ptr, device_ptr, nbytes):
                self.run(lambda: ctypes.memmove(host_ptr, fake.device[device_ptr].ctypes.data, nbytes))

            def wait(self, event):
                pass

            def synchronize(self):
                assert self.recording is None, "synchronize while capturing"

            def destroy(self):
                fake.streams.pop(self.handle)

        class Event:
            def __init__(self, timing=False):
                self.timing, self.recorded = timing, 0

            def record(self, stream):
                self.recorded += 1

            def milliseconds_since(self, start):
                assert self.timing and start.timing and self.recorded and start.recorded
                return 0.25

            def synchronize(self):
                pass

            def destroy(self):
                pass

        class GraphExec:
            def __init__(self, graph):
                self.work = fake.graphs[graph]

            def launch(self, stream):
                fake.launches += 1
                for work in self.work:
                    work()

            def destroy(self):
                fake.destroyed_graphs += 1
                self.work = []

        self.DeviceMemory, self.PinnedMemory, self.Stream, self.Event, self.GraphExec = (
            DeviceMemory, PinnedMemory, Stream, Event, GraphExec)

    def begin_capture(self, stream):
        stream.recording = []

    def end_capture(self, stream):
        work, stream.recording = stream.recording, None
        graph = len(self.graphs) + 1
        self.graphs[graph] = work
        return graph

    def destroy_graph(self, graph):
        self.graphs[graph] = []

    def current(self, device):
        return nullcontext()

    def owned_pinned_buffer(self, nbytes, device):
        buffer = (ctypes.c_byte * max(nbytes, 1))()
        self.page_locked.append((ctypes.addressof(buffer), ctypes.addressof(buffer) + len(buffer)))
        return buffer

    def is_page_locked(self, ptr, nbytes):
        return any(start <= ptr and ptr + nbytes <= stop for start, stop in self.page_locked)


class TwoHeadedModel:
    """Inputs a (N, 3) float16 at the engine and b (N, 2) float32; outputs total = sum(a) + sum(b) (N, 1) and
    double = 2a (N, 3) float16. Profile 0 takes batches 1 to 64, profile 1 (when built with two) 65 to 256."""
    io = [("a", True, F16), ("b", True, F32), ("total", False, F32), ("double", False, F16)]
    profile = {"a": ProfileRange((1, 3), (8, 3), (64, 3)), "b": ProfileRange((1, 2), (8, 2), (64, 2))}
    second = {"a": ProfileRange((65, 3), (128, 3), (256, 3)), "b": ProfileRange((65, 2), (128, 2), (256, 2))}

    @staticmethod
    def reference(a, b):
        return (a.astype(F16).astype(F32).sum(1, keepdims=True) + b.sum(1, keepdims=True),
                (2 * a.astype(F16)).astype(F32))


class FakeTensorRT:
    """The parts of TensorRT's Python API the runtime uses, with TensorRT 8.6's rule on profiles: a profile of an
    engine with dynamic shapes is held by at most one live execution context. A new context takes profile 0 when
    it is free; selecting a profile another live context holds logs TensorRT's error and returns False (the real
    one may also crash the process later). Anything TensorRT would refuse or leave undefined is recorded in
    `errors` (a False it returned) or `violations` (misuse the runtime must never commit)."""

    class ILogger:
        def __init__(self):
            pass

    class TensorLocation:
        DEVICE, HOST = "device", "host"

    class TensorFormat:
        LINEAR = "linear"

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    def __init__(self, cuda, version="8.6.1", profiles=1, refuse_capture=False, fail_execute=False):
        self.cuda, self.__version__ = cuda, version
        self.refuse_capture, self.fail_execute = refuse_capture, fail_execute
        self.ranges = [TwoHeadedModel.profile, TwoHeadedModel.second][:profiles]
        self.errors, self.violations, self.contexts, self.executions = [], [], [], 0
        self.printed, self.logger = [], None    # what TensorRT's own logger printed; the runtime's logger
        printed = self.printed

        class Logger:
            """TensorRT's logger, which prints what it is given (at WARNING and above) to stderr."""
            ERROR, WARNING = 1, 2

            def __init__(self, level):
                self.level = level

            def log(self, severity, message):
                if severity <= self.level:
                    printed.append((severity, message))
        self.Logger = Logger
        if not version.startswith("8."):
            self.ExecutionContextAllocationStrategy = type("Strategy", (), {"USER_MANAGED": "user"})

    @staticmethod
    def nptype(dtype):
        return dtype

    def Runtime(self, logger):  # noqa: N802 - TensorRT's name
        self.logger = logger
        return FakeRuntime(self)

    def live_contexts(self):
        return [c for c in (ref() for ref in self.contexts) if c is not None]


class FakeRuntime:
    def __init__(self, trt):
        self.trt = trt

    def deserialize_cuda_engine(self, plan):
        return FakeEngine(self.trt, self)


class FakeEngine:
    def __init__(self, trt, runtime):
        self.trt, self.runtime = trt, weakref.ref(runtime)
        self.num_io_tensors = len(TwoHeadedModel.io)
        self.num_optimization_profiles = len(trt.ranges)
        self.device_memory_size = self.device_memory_size_v2 = 1024
        self.holders = {}    # profile -> weakref to the context holding it

    def __del__(self):
        if self.runtime() is None:
            self.trt.violations.append("engine destroyed after its runtime")

    def get_tensor_name(self, index):
        return TwoHeadedModel.io[index][0]

    def _io(self, name):
        return next(entry for entry in TwoHeadedModel.io if entry[0] == name)

    def get_tensor_location(self, name):
        return FakeTensorRT.TensorLocation.DEVICE

    def get_tensor_format(self, name):
        return FakeTensorRT.TensorFormat.LINEAR

    def get_tensor_mode(self, name):
        return FakeTensorRT.TensorIOMode.INPUT if self._io(name)[1] else FakeTensorRT.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return self._io(name)[2]

    def get_tensor_shape(self, name):
        return (-1, {"a": 3, "b": 2, "total": 1, "double": 3}[name])

    def get_tensor_profile_shape(self, name, profile):
        rng = self.trt.ranges[profile][name]
        return [rng.min, rng.opt, rng.max]

    def holder(self, profile):
        ref = self.holders.get(profile)
        return ref() if ref is not None else None

    def create_execution_context_without_device_memory(self):
        if not self.trt.__version__.startswith("8."):
            raise AttributeError("removed in TensorRT 10")
        return self._new_context()

    def create_execution_context(self, strategy):
        assert strategy == "user"
        return self._new_context()

    def _new_context(self):
        context = (FakeContext86 if self.trt.__version__.startswith("8.") else FakeContext10)(self)
        self.trt.contexts.append(weakref.ref(context))
        if self.holder(0) is None:          # profile 0 is given to a new context only when it is free
            context.profile, self.holders[0] = 0, weakref.ref(context)
        return context


# TensorRT 8.6's words for an engine it cannot capture into a CUDA graph (a Conv1D and two GRUs, on an H100).
CAPTURE_REFUSED = ("3: [executionContext.cpp::enqueueV3::2666] Error Code 3: API Usage Error (Parameter check failed "
                   "at: runtime/api/executionContext.cpp::enqueueV3::2666, condition: The CUDA stream is in capturing "
                   "mode, but this TRT engine is not stream capturable!)")


class FakeContext:
    """Its kernel reads the shapes and addresses as they are when queued (as kernel arguments are), and checks,
    when it runs from a graph, that the context was set back to the shapes it was captured at."""

    def __init__(self, engine):
        self.trt, self.engine, self.profile = engine.trt, weakref.ref(engine), -1
        self.shapes, self.addresses, self.memory = {}, {}, None

    def __del__(self):
        if self.engine() is None:
            self.trt.violations.append("context destroyed after its engine")

    def _engine(self):
        engine = self.engine()
        if engine is None:
            self.trt.violations.append("context used after its engine was destroyed")
        return engine

    def set_optimization_profile_async(self, profile, stream):
        engine = self._engine()
        holder = engine.holder(profile)
        if holder is not None and holder is not self:
            self.trt.errors.append(f"Profile {profile} has been chosen by another IExecutionContext")
            return False
        if self.profile >= 0 and engine.holder(self.profile) is self:
            del engine.holders[self.profile]
        self.profile, self.shapes = profile, {}
        engine.holders[profile] = weakref.ref(self)
        return True

    def set_input_shape(self, name, shape):
        if self.profile < 0:
            self.trt.errors.append("no optimization profile")
            return False
        rng = self.trt.ranges[self.profile][name]
        if len(shape) != len(rng.min) or not all(low <= d <= high for d, low, high in zip(shape, rng.min, rng.max)):
            self.trt.errors.append(f"shape {shape} of {name} outside profile {self.profile}")
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        batch = self.shapes["a"][0]
        return {"total": (batch, 1), "double": (batch, 3)}[name]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, handle):
        engine, stream = self._engine(), self.trt.cuda.streams[handle]
        if self.memory is None or self.profile < 0 or engine.holder(self.profile) is not self:
            self.trt.errors.append("run without device memory or without holding its profile")
            return False
        if set(self.shapes) != {"a", "b"} or set(self.addresses) != {"a", "b", "total", "double"}:
            self.trt.errors.append("run without every shape and address set")
            return False
        if stream.recording is not None and self.trt.refuse_capture:
            self.trt.logger.log(self.trt.Logger.ERROR, CAPTURE_REFUSED)
            self.trt.errors.append("enqueueV3 failed")
            return False
        if self.trt.fail_execute:
            self.trt.errors.append("enqueueV3 failed")
            return False
        self.trt.executions += 1
        shapes, addresses, device = dict(self.shapes), dict(self.addresses), self.trt.cuda.device
        assert shapes["a"][0] == shapes["b"][0]
        context, violations = weakref.ref(self), self.trt.violations

        def kernel():
            if context() is None:
                violations.append("graph replayed after its context was destroyed")
            elif context().shapes != shapes:
                violations.append(f"graph for {shapes} replayed while the context is at {context().shapes}")

            def tensor(name, dtype, shape):
                return device[addresses[name]][:runtime.nbytes(shape, dtype)].view(dtype).reshape(shape)
            batch = shapes["a"][0]
            a, b = tensor("a", F16, shapes["a"]), tensor("b", F32, shapes["b"])
            tensor("total", F32, (batch, 1))[:] = a.astype(F32).sum(1, keepdims=True) + b.sum(1, keepdims=True)
            tensor("double", F16, (batch, 3))[:] = 2 * a
        stream.run(kernel)
        return True


class FakeContext86(FakeContext):
    """TensorRT 8.6 takes the device memory as a property."""

    @property
    def device_memory(self):
        raise AttributeError("write-only")

    @device_memory.setter
    def device_memory(self, ptr):
        self.memory = ptr


class FakeContext10(FakeContext):
    """TensorRT 10 takes the device memory with its size (set_device_memory, 10.1 on)."""

    def set_device_memory(self, ptr, size):
        assert size >= 1024
        self.memory = ptr


@pytest.fixture
def fake_cuda(monkeypatch):
    cuda = FakeCuda()
    for module in CUDA_USERS:
        monkeypatch.setattr(module, "cuda", cuda)
    return cuda


def fake_engine(monkeypatch, fake_cuda, tmp_path, version="8.6.1", profiles=1, refuse_capture=False,
                fail_execute=False, **options):
    """An Engine whose TensorRT and driver are the simulation; everything else is the real runtime."""
    trt = FakeTensorRT(fake_cuda, version, profiles, refuse_capture, fail_execute)
    monkeypatch.setattr(engine_module, "_import_tensorrt", lambda: trt)
    plan = tmp_path / "two.plan"
    plan.write_bytes(b"plan")
    return Engine(plan, _probe=probe(version), **options), trt


def closed_cleanly(engine, trt):
    engine.close()
    gc.collect()
    return trt.live_contexts() == [] and trt.violations == [] and trt.errors == []


def inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3)).astype(np.float32), rng.standard_normal((batch, 2))


def assert_matches(outputs, a, b):
    total, double = TwoHeadedModel.reference(a, b)
    assert outputs[0].dtype == F32 and outputs[1].dtype == F32
    np.testing.assert_allclose(outputs[0], total, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(outputs[1], double)


@pytest.mark.parametrize("manifest", [
    "{not json",
    json.dumps({"artifacts": [{"name": "two.plan", "kind": "engine"}], "engine": {"tensorrt": "8.6.1"}}),
    json.dumps({"artifacts": [{"name": "two.plan", "kind": "engine"}],
                "engine": {"tensorrt": "8.6.1", "gpu": H100[0], "compute_capability": H100[1]},
                "names": {"inputs": [{"name": "lstm_1_input"}]}})])
def test_check_false_loads_by_the_engines_own_names_where_the_manifest_cannot_serve(monkeypatch, fake_cuda, tmp_path,
                                                                                   manifest):
    """Not JSON, no GPU recorded, names the engine lacks: refused when checked, a warning with check=False."""
    (tmp_path / "trtkit.json").write_text(manifest)
    with pytest.raises(IncompatibleEngine):
        fake_engine(monkeypatch, fake_cuda, tmp_path)
    with pytest.warns(RuntimeWarning, match="check=False"):
        engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, check=False)
    a, b = inputs(5)
    assert_matches(engine.predict([a, b]), a, b)
    assert closed_cleanly(engine, trt)


def test_close_from_two_threads_at_once_frees_everything_once(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2)
    engine.predict(list(inputs(5)))
    engine.predict(list(inputs(100)))       # the second profile's lane
    close_lane = _Lane.close

    def slow_close(lane):
        time.sleep(0.1)
        close_lane(lane)

    monkeypatch.setattr(_Lane, "close", slow_close)
    with ThreadPoolExecutor(2) as threads:
        for done in [threads.submit(engine.close) for _ in range(2)]:
            done.result()
    assert closed_cleanly(engine, trt)


def test_the_simulation_enforces_one_context_per_profile(fake_cuda):
    """As TensorRT 8.6 did on an H200: a second context cannot select profile 0 while the first lives."""
    trt = FakeTensorRT(fake_cuda, profiles=2)
    engine = FakeRuntime(trt).deserialize_cuda_engine(b"")
    first, second = engine.create_execution_context_without_device_memory(), \
        engine.create_execution_context_without_device_memory()
    assert first.profile == 0 and second.profile == -1
    assert not second.set_optimization_profile_async(0, 0)
    assert trt.errors == ["Profile 0 has been chosen by another IExecutionContext"]
    assert second.set_optimization_profile_async(1, 0)
    del first
    assert second.set_optimization_profile_async(0, 0)   # free once the first is gone


@pytest.mark.parametrize("version", ["8.6.1", "10.0.1"])
def test_small_batches_run_once_then_replay_their_graph(monkeypatch, fake_cuda, tmp_path, version):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, version=version)
    a, b = inputs(5)
    assert_matches(engine.predict([a, b]), a, b)        # a run, then the same queued again under capture
    assert trt.executions == 2 and fake_cuda.launches == 0
    a2, b2 = inputs(5, seed=1)
    assert_matches(engine.predict({"b": b2, "a": a2}), a2, b2)
    assert trt.executions == 2 and fake_cuda.launches == 1   # replayed: TensorRT was not called again
    assert list(engine.predict([a, b], as_dict=True)) == ["total", "double"]
    assert len(trt.contexts) == 1                             # graphs share the lane's one context
    assert closed_cleanly(engine, trt)


def test_graphs_of_several_shapes_share_the_context_and_replay_after_it_changed(monkeypatch, fake_cuda, tmp_path):
    """Each replay finds the context set back to its graph's shapes (the simulation checks), after other
    shapes, and after a streamed batch, ran on that context."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=40 * 14, stream_chunk_bytes=200,
                              max_lanes=1)
    for batch, seed in [(5, 0), (7, 1), (5, 2), (50, 3), (7, 4), (5, 5), (7, 6)]:
        a, b = inputs(batch, seed)
        assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 4 and len(trt.contexts) == 1
    assert closed_cleanly(engine, trt)


def test_the_graph_cache_is_bounded_per_lane(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, graph_cache_size=2, max_lanes=1)
    for batch in (1, 2, 3, 1):
        a, b = inputs(batch, seed=batch)
        assert_matches(engine.predict([a, b]), a, b)
    # 1, 2 and 3 were captured; 3 evicted 1 (destroyed), and 1 came back as a new capture, evicting 2
    assert fake_cuda.destroyed_graphs == 2 and len(trt.contexts) == 1
    assert closed_cleanly(engine, trt)
    assert fake_cuda.destroyed_graphs == 4


def test_small_buffers_are_made_once_for_the_largest_small_batch(monkeypatch, fake_cuda, tmp_path):
    """Here 4 rows (by bytes at the engine: 3 float16 + 2 float32 a row); their graphs stay as batches grow."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=4 * (3 * 2 + 2 * 4), max_lanes=1)
    a, b = inputs(2)
    assert_matches(engine.predict([a, b]), a, b)
    a, b = inputs(4)                      # fits the buffers made for 4 rows: a second graph
    assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.destroyed_graphs == 0
    a, b = inputs(5)                      # over small_batch_bytes: streamed, small buffers stay
    assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.destroyed_graphs == 0
    assert closed_cleanly(engine, trt)


def test_an_engine_that_cannot_be_captured_runs_without_graphs(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, refuse_capture=True, max_lanes=1)
    a, b = inputs(3)
    with pytest.warns(RuntimeWarning, match="CUDA graphs are off for this engine"):
        assert_matches(engine.predict([a, b]), a, b)
    for seed in (1, 2):
        a, b = inputs(3, seed)
        assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 0 and trt.executions == 3 and len(trt.contexts) == 1
    assert trt.errors == ["enqueueV3 failed"]           # the refused capture, once
    trt.errors.clear()
    assert closed_cleanly(engine, trt)


def test_an_engine_tensorrt_cannot_capture_costs_one_warning_of_trtkits_and_none_of_tensorrts_errors(
        monkeypatch, fake_cuda, tmp_path):
    """TensorRT 8.6 printed its Error Code 3 for the first call of each shape on such an engine; now one line of
    trtkit's says graphs are off, for the engine (both profiles' lanes), and TensorRT's other messages still print."""
    monkeypatch.setattr(trt_module, "_loggers", [])   # a logger made on this simulation's TensorRT
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2, refuse_capture=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in (3, 4, 5, 100, 101):                 # first calls of five shapes, on two lanes
            a, b = inputs(batch)
            assert_matches(engine.predict([a, b]), a, b)
    said = [str(w.message) for w in caught]
    assert said == ["trtkit.runtime: CUDA graphs are off for this engine (TensorRT cannot capture this engine's run: "
                    "it is not stream capturable); small batches run without them"], said
    assert trt.printed == [] and fake_cuda.launches == 0
    trt.logger.log(trt.Logger.WARNING, "a warning of TensorRT's, not under capture")
    assert trt.printed == [(trt.Logger.WARNING, "a warning of TensorRT's, not under capture")]
    assert trt.errors == ["enqueueV3 failed"]           # one refused capture: the second lane knew before
    trt.errors.clear()
    assert closed_cleanly(engine, trt)


def test_what_tensorrt_logs_during_a_capture_that_works_is_printed_after_it(monkeypatch, fake_cuda, tmp_path):
    monkeypatch.setattr(trt_module, "_loggers", [])
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path)
    execute = FakeContext.execute_async_v3

    def warning_while_capturing(context, handle):
        if trt.cuda.streams[handle].recording is not None:
            trt.logger.log(trt.Logger.WARNING, "said while capturing")
            assert trt.printed == []                      # held while the capture runs
        return execute(context, handle)

    monkeypatch.setattr(FakeContext, "execute_async_v3", warning_while_capturing)
    a, b = inputs(3)
    assert_matches(engine.predict([a, b]), a, b)
    assert trt.printed == [(trt.Logger.WARNING, "said while capturing")]
    assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 1 and closed_cleanly(engine, trt)


def test_graphs_off(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, graphs=False, max_lanes=1)
    for seed in range(3):
        a, b = inputs(7, seed)
        assert_matches(engine.predict([a, b]), a, b)
    assert fake_cuda.launches == 0 and len(trt.contexts) == 1 and trt.executions == 3
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("batch", [64, 65, 1000, 1001])
def test_large_batches_stream_in_chunks_into_one_result(monkeypatch, fake_cuda, tmp_path, batch):
    """Chunks of at most 64 rows (the profile's max) or stream_chunk_bytes; float16 in and out at the engine."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=0, stream_chunk_bytes=600,
                              fill_threads=3, max_lanes=1)
    a, b = inputs(batch)
    outputs = engine.predict([a, b])
    assert_matches(outputs, a, b)
    assert trt.executions == len(runtime.plan_chunks(batch, runtime.stream_rows(3 * 2 + 2 * 4, 1, 64, 600), 1, 64))
    assert closed_cleanly(engine, trt)


def _within(ptr, array):
    return array.ctypes.data <= ptr < array.ctypes.data + array.nbytes


def test_page_locked_inputs_stream_to_the_gpu_straight_from_the_callers_array(monkeypatch, fake_cuda, tmp_path):
    """pinned_empty() arrays of the engine's dtypes are copied from where they are, chunk by chunk; the results
    are those of the staged path."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=0, stream_chunk_bytes=600,
                              max_lanes=1)
    a, b = inputs(1001)
    pinned_a, pinned_b = runtime.pinned_empty(a.shape, F16), runtime.pinned_empty(b.shape, F32)
    pinned_a[:], pinned_b[:] = a, b
    staged_uploads = len(fake_cuda.upload_sources)
    outputs = engine.predict([pinned_a, pinned_b])
    assert_matches(outputs, pinned_a.astype(F32), pinned_b)
    uploads = fake_cuda.upload_sources[staged_uploads:]
    assert len(uploads) == 2 * trt.executions
    assert all(_within(ptr, pinned_a if i % 2 == 0 else pinned_b) for i, ptr in enumerate(uploads))
    assert sorted(uploads[::2]) == uploads[::2] and uploads[0] == pinned_a.ctypes.data
    assert closed_cleanly(engine, trt)


def test_page_locked_inputs_of_a_small_batch_skip_the_staging_copy(monkeypatch, fake_cuda, tmp_path):
    """A graph-replayed batch copies a page-locked input to the GPU from the caller's array, ahead of the graph
    (whose nodes hold fixed addresses), and stages the others; graphs are kept per set of such inputs, so the same
    shape from ordinary arrays still replays its own graph."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, max_lanes=1)
    a, b = inputs(10)
    pinned_b = runtime.pinned_empty(b.shape, F32)
    for call in range(3):
        pinned_b[:] = b + call        # new contents each call: nothing of an earlier call may be replayed
        before = len(fake_cuda.upload_sources)
        assert_matches(engine.predict([a, pinned_b]), a, b + call)
        uploads = fake_cuda.upload_sources[before:]
        # b straight from pinned_b; a from staging (queued by the first run and again by the capture, then in the
        # graph, which the simulation does not count as a new upload)
        assert [_within(ptr, pinned_b) for ptr in uploads] == ([True, False, False] if call == 0 else [True])
    assert fake_cuda.launches == 2   # the first call ran TensorRT and captured; the next two replayed
    assert_matches(engine.predict([a, b.astype(F32)]), a, b)    # the same shape staged: a graph of its own
    assert_matches(engine.predict([a, b.astype(F32)]), a, b)
    assert fake_cuda.launches == 3
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("why", ["float64, not the engine's float32", "not C-contiguous", "pageable"])
def test_other_inputs_go_through_staging(monkeypatch, fake_cuda, tmp_path, why):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=0, stream_chunk_bytes=600,
                              max_lanes=1)
    a, b = inputs(300)
    if why.startswith("float64"):
        given = runtime.pinned_empty(b.shape, np.float64)
    elif why == "not C-contiguous":
        given = runtime.pinned_empty((300, 4), F32)[:, :2]
    else:
        given = np.empty(b.shape, F32)
    given[:] = b
    assert_matches(engine.predict([a, given]), a, given)
    assert not any(_within(ptr, given.base if given.base is not None else given) for ptr in fake_cuda.upload_sources)
    assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("batch", [10, 300])
def test_pinned_copy_makes_inputs_of_the_engines_types_that_go_straight_to_the_gpu(monkeypatch, fake_cuda, tmp_path,
                                                                                  batch):
    """float32 for the engine's float16 input a, float64 for its float32 input b: the copies are float16 and
    float32, page-locked, by engine name, and predict() uploads each from where it is (a graph run and a
    streamed one)."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, small_batch_bytes=40 * 14, stream_chunk_bytes=600,
                              max_lanes=1)
    a, b = inputs(batch)
    pinned = engine.pinned_copy({"b": b, "a": a})
    assert {name: x.dtype for name, x in pinned.items()} == {"a": F16, "b": F32}
    assert all(fake_cuda.is_page_locked(x.ctypes.data, x.nbytes) for x in pinned.values())
    np.testing.assert_array_equal(pinned["a"], a.astype(F16))
    before = len(fake_cuda.upload_sources)
    assert_matches(engine.predict(pinned), a, b)
    uploads = fake_cuda.upload_sources[before:]
    assert all(any(_within(ptr, x) for ptr in uploads) for x in pinned.values())
    assert closed_cleanly(engine, trt)


def test_pinned_empty_is_freed_with_its_last_view(fake_cuda):
    freed = []
    x = runtime.pinned_empty((4, 3), np.float16)
    assert x.shape == (4, 3) and x.dtype == F16 and fake_cuda.is_page_locked(x.ctypes.data, x.nbytes)
    weakref.finalize(x.base, freed.append, True)
    view = x[1:]
    del x
    gc.collect()
    assert not freed
    del view
    gc.collect()
    assert freed == [True]


@pytest.mark.parametrize("batch", [5, 1000])
def test_device_time_is_kept_only_when_asked(monkeypatch, fake_cuda, tmp_path, batch):
    """For a graph replay, a first run and a streamed batch; events with timing are made only when asked."""
    for time_device in (False, True):
        engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, stream_chunk_bytes=600, max_lanes=1,
                                  time_device=time_device)
        for _ in range(2):
            engine.predict(list(inputs(batch)))
            assert engine.last_device_ms == (0.25 if time_device else None)
        assert closed_cleanly(engine, trt)


@pytest.mark.parametrize("version", ["8.6.1", "10.0.1"])
def test_many_threads_share_the_one_lane_of_a_single_profile(monkeypatch, fake_cuda, tmp_path, version):
    """max_lanes=4, but the engine has one profile: one context, and the calls take turns on it."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, version=version, stream_chunk_bytes=200, max_lanes=4)

    def call(seed):
        a, b = inputs(1 + seed * 37 % 300, seed)
        assert_matches(engine.predict([a, b]), a, b)

    with ThreadPoolExecutor(6) as threads:
        list(threads.map(call, range(24)))
    assert len(trt.contexts) == 1
    assert closed_cleanly(engine, trt)
    with pytest.raises(RuntimeError, match="closed"):
        engine.predict(list(inputs(1)))


def test_two_profiles_get_a_lane_each(monkeypatch, fake_cuda, tmp_path):
    """Batches of up to 64 rows take profile 0's lane, of 65 to 256 profile 1's: two contexts, one a profile, even
    when the lane of profile 1 is made first (its new context is given profile 0, and gives it up)."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2, max_lanes=4)
    a, b = inputs(100)
    assert_matches(engine.predict([a, b]), a, b)

    def call(seed):
        a, b = inputs((3, 100, 64, 200)[seed % 4], seed)
        assert_matches(engine.predict([a, b]), a, b)

    with ThreadPoolExecutor(6) as threads:
        list(threads.map(call, range(24)))
    assert len(trt.contexts) == 2
    assert closed_cleanly(engine, trt)


def test_a_profile_tensorrt_refuses_raises_instead_of_running(monkeypatch, fake_cuda, tmp_path):
    """Another context (not the runtime's) holds profile 0: the lane cannot be made, and predict() says why."""
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path)
    squatter = engine._loaded.engine.create_execution_context_without_device_memory()
    with pytest.raises(RuntimeError, match="TensorRT refused optimization profile 0 to a new execution context"):
        engine.predict(list(inputs(3)))
    assert trt.errors == ["Profile 0 has been chosen by another IExecutionContext"] and trt.executions == 0
    del squatter
    trt.errors.clear()
    a, b = inputs(3)
    assert_matches(engine.predict([a, b]), a, b)      # the slot was given back: a lane is made now
    assert closed_cleanly(engine, trt)


def test_the_runtime_never_asks_for_a_second_context_on_a_profile(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path)
    engine.predict(list(inputs(3)))
    with pytest.raises(RuntimeError, match="already has 1 execution context"):
        engine._loaded.new_context(fake_cuda.DeviceMemory(1024), 0, fake_cuda.Stream(), 1)
    assert trt.errors == [] and len(trt.contexts) == 1   # refused before TensorRT was asked
    assert closed_cleanly(engine, trt)


def test_a_failed_run_raises_and_the_lane_stays_usable(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, fail_execute=True, max_lanes=1)
    with pytest.raises(RuntimeError, match="TensorRT failed to run the engine"):
        engine.predict(list(inputs(3)))
    with pytest.raises(RuntimeError, match="TensorRT failed to run the engine"):
        engine.predict(list(inputs(500)))
    trt.fail_execute = False
    trt.errors.clear()
    a, b = inputs(3)
    assert_matches(engine.predict([a, b]), a, b)
    assert closed_cleanly(engine, trt)


def test_close_drops_contexts_before_the_engine_and_the_engine_before_its_runtime(monkeypatch, fake_cuda, tmp_path):
    engine, trt = fake_engine(monkeypatch, fake_cuda, tmp_path, profiles=2)
    for batch in (3, 100, 1000):
        engine.predict(list(inputs(batch)))
    assert len(trt.live_contexts()) == 2
    assert closed_cleanly(engine, trt)
    engine.close()                                     # twice is harmless


def save_arrays(path, arrays):
    """As a trtkit build keeps references: a0, a1... with their names in `names`."""
    np.savez(path, names=np.array(list(arrays)), **{"a%d" % i: v for i, v in enumerate(arrays.values())})


def run_check(monkeypatch, fake_cuda, tmp_path, capsys, **fake):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import runtime_check
    finally:
        sys.path.pop(0)
    trt = FakeTensorRT(fake_cuda, **fake)
    monkeypatch.setattr(engine_module, "_import_tensorrt", lambda: trt)
    monkeypatch.setattr(runtime, "Engine", functools.partial(Engine, _probe=probe("8.6.1")))
    monkeypatch.setattr(runtime_check, "TIME_BUDGET_S", 0.0)
    monkeypatch.setattr(runtime_check, "SWEEP_BUDGET_S", 0.0)
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.plan").write_bytes(b"plan")
    a, b = inputs(4)
    total, double = TwoHeadedModel.reference(a, b)
    save_arrays(out / "reference-inputs.npz", {"a": a, "b": b})
    save_arrays(out / "reference-outputs.npz", {"total": total, "double": double})
    rc = runtime_check.main([str(out), "1,3,40,200", "--sweep"])
    return rc, [json.loads(line) for line in capsys.readouterr().out.splitlines()], trt


def test_runtime_check_on_the_simulation(monkeypatch, fake_cuda, tmp_path, capsys):
    rc, lines, trt = run_check(monkeypatch, fake_cuda, tmp_path, capsys)
    assert rc == 0 and lines[0]["profiles"] == 1 and lines[0]["built"] is None
    assert [line["batch"] for line in lines[1:5]] == [1, 3, 40, 200]
    assert lines[4]["runs_as"] == "4 streamed chunks"
    assert all(line["max_abs_err_vs_keras"] < 1e-5 and line["replay_vs_first"] == 0 for line in lines[1:5])
    assert all(line["device_ms"] == 0.25 for line in lines[1:5])
    assert all(line["pinned_input_vs_first"] == 0 for line in lines[1:5])   # every batch, from a pinned input too
    assert lines[4]["device_ms_pinned_input"] == 0.25 and lines[4]["median_ms_pinned_input"] > 0
    assert lines[5] == {"replay_after_other_shapes_vs_first": {"1": 0.0, "3": 0.0, "40": 0.0, "200": 0.0}}
    sweep = [line["sweep"] for line in lines[6:]]
    assert [(s["fill_threads"], s["stream_chunk_mb"]) for s in sweep] == [
        (threads, mb) for threads in (4, 8, 16) for mb in (16, 32, 64)]
    assert all(s["batch"] == 200 and s["median_ms"] > 0 for s in sweep)
    assert trt.violations == [] and trt.errors == []


def test_runtime_check_prints_a_line_for_a_failure(monkeypatch, fake_cuda, tmp_path, capsys):
    rc, lines, trt = run_check(monkeypatch, fake_cuda, tmp_path, capsys, fail_execute=True)
    assert rc == 1
    assert lines[1] == {"batch": 1, "error": "RuntimeError: TensorRT failed to run the engine (its log above says why)"}
    assert [line["batch"] for line in lines[1:5] if "error" in line] == [1, 3, 40, 200]   # each, then on
    assert lines[5] == {"replay_after_other_shapes_vs_first": {}}


def _frameworks_lines(gpu, batches):
    torch_row = {"device_ms": 0.05, "end_to_end_ms": 0.07, "max_abs_err_vs_keras": 1e-5}
    return [{"gpu": gpu, "torch": "2.x", "keras": "3.x", "keras_backend": "torch"}] + [
        {"batch": b, "keras-predict": {"end_to_end_ms": 5.0 * b}, "torch-fp32": torch_row, "torch-fp16": torch_row}
        for b in batches]


def test_runtime_goals_divides_one_gpus_figures_only(monkeypatch, fake_cuda, tmp_path, capsys):
    """runtime_goals.py on runtime_check's real output (on the simulation) and frameworks.py-shaped lines."""
    rc, lines, _ = run_check(monkeypatch, fake_cuda, tmp_path, capsys)
    assert lines[1]["batch"] == 1
    # The simulation's host time varies with the machine: fixed here. 5 ms / 0.25 is 20x, 5 / 0.125 40x.
    lines[1]["median_ms"], lines[1]["median_ms_engine_types"], lines[1]["median_ms_pinned_input"] = 0.25, 0.5, 0.125
    runtime_lines = tmp_path / "runtime.jsonl"
    runtime_lines.write_text("\n".join(json.dumps(line) for line in lines))
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import runtime_goals
    finally:
        sys.path.pop(0)
    frameworks = tmp_path / "frameworks.jsonl"
    frameworks.write_text("\n".join(json.dumps(line) for line in _frameworks_lines(H100[0], [1, 3, 40, 200])))
    assert runtime_goals.main([str(frameworks), f"sim={runtime_lines}"]) == 0
    table = capsys.readouterr().out
    # batch 1: GPU time 0.25 ms (the simulation's) against PyTorch's 0.05: not met; Keras 5 ms / runtime's median
    assert "| 1 | 0.25 | 0.05 | 0.05 | 0.20 | **not met** |" in table
    assert "| 1 | 5 | 0.25 (20.0x) | 0.5 (10.0x) | 0.125 (40.0x) | met from a page-locked copy |" in table
    assert "| 200 | 1000 |" in table and "| fill threads | chunk MB | median ms |" in table
    frameworks.write_text("\n".join(json.dumps(line) for line in _frameworks_lines("NVIDIA A100", [1])))
    with pytest.raises(SystemExit, match="not divided"):
        runtime_goals.main([str(frameworks), f"sim={runtime_lines}"])
