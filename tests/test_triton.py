"""--triton-repo: the config is parsed with Triton's own protobuf definitions, not read with a regex."""
import json

import pytest
from conftest import STANDIN_ARGS
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from trtkit.errors import OutputNotWritable, TargetUnsupported
from trtkit.triton import config_text, write

NAMES = {"inputs": [{"name": "lstm_1_input", "keras_tensor": "", "frozen": "", "imported": "",
                     "shape": [None, 11, 192], "dtype": "float32"}],
         "outputs": [{"name": "dense_3", "keras_tensor": "", "frozen": "", "imported": "",
                      "shape": [None, 1], "dtype": "float32"}],
         "params": 68630}
ENGINE = {"names": NAMES, "options": {"shapes": {}}, "target": {"chosen": "engine"},
          "engine": {"profiles": {"lstm_1_input": {"min": [1, 11, 192], "opt": [1024, 11, 192],
                                                   "max": [100000, 11, 192]}}}}


def parsed(text: str):
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_an_engine_config_has_the_real_names_types_dims_and_the_profiles_batch():
    config = parsed(config_text("origin_lstm", ENGINE, "tensorrt_plan"))
    assert (config.name, config.platform, config.max_batch_size) == ("origin_lstm", "tensorrt_plan", 100000)
    [inp], [out] = config.input, config.output
    assert (inp.name, inp.data_type, list(inp.dims)) == ("lstm_1_input", model_config_pb2.TYPE_FP32, [11, 192])
    assert (out.name, out.data_type, list(out.dims)) == ("dense_3", model_config_pb2.TYPE_FP32, [1])
    assert config.HasField("dynamic_batching")


def test_an_engine_with_float16_io_is_served_as_float16_and_an_onnx_model_is_not():
    half = dict(ENGINE, options={"shapes": {}, "io_precision": "fp16"})
    config = parsed(config_text("origin_lstm", half, "tensorrt_plan"))
    assert [t.data_type for t in (*config.input, *config.output)] == [model_config_pb2.TYPE_FP16] * 2
    config = parsed(config_text("origin_lstm", dict(half, engine=None), "onnxruntime_onnx"))
    assert [t.data_type for t in (*config.input, *config.output)] == [model_config_pb2.TYPE_FP32] * 2


def test_files_put_in_the_model_folder_during_the_build_are_kept_without_force(tmp_path):
    """The folder was checked before the build; what appeared there since is checked again before replacing."""
    out, folder = tmp_path / "out", tmp_path / "repo" / "origin_lstm"
    out.mkdir()
    (out / "model.plan").write_bytes(b"engine")
    (folder / "2").mkdir(parents=True)
    (folder / "2" / "model.onnx").write_text("someone else's")
    with pytest.raises(OutputNotWritable, match="holds files trtkit did not write"):
        write(folder, out, ENGINE, force=False)
    assert (folder / "2" / "model.onnx").read_text() == "someone else's"
    write(folder, out, ENGINE, force=True)
    assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt"]
    assert (folder / "1" / "model.plan").read_bytes() == b"engine"


def test_an_onnx_build_at_fp16_serves_its_rewrite_as_model_onnx(tmp_path):
    out, folder = tmp_path / "out", tmp_path / "repo" / "origin_lstm"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"fp32")
    (out / "model.fp16.onnx").write_bytes(b"fp16")
    onnx_build = dict(ENGINE, target={"chosen": "onnx"}, engine=None)
    write(folder, out, dict(onnx_build, options={"shapes": {}, "precision": "fp16"}), force=False)
    assert (folder / "1" / "model.onnx").read_bytes() == b"fp16"
    write(folder, out, dict(onnx_build, options={"shapes": {}, "precision": "fp32"}), force=False)
    assert (folder / "1" / "model.onnx").read_bytes() == b"fp32"


def test_an_onnx_config_takes_its_batch_from_shapes_and_marks_unknown_dims():
    names = json.loads(json.dumps(NAMES))
    names["inputs"][0]["shape"] = [None, None, 192]
    manifest = dict(ENGINE, engine=None, names=names, options={"shapes": {"lstm_1_input": [[1, 11, 192], [8, 11, 192],
                                                                                          [256, 11, 192]]}})
    config = parsed(config_text("m", manifest, "onnxruntime_onnx"))
    assert config.max_batch_size == 256 and list(config.input[0].dims) == [-1, 192]


def test_a_tensor_of_the_batch_dimension_alone_is_one_element_reshaped_to_none():
    """Triton refuses a tensor without dims ("must specify 'dims'"): a per-row scalar, shape [batch], is served as
    dims [ 1 ] with an empty reshape, as Triton's model configuration says for such tensors."""
    names = json.loads(json.dumps(NAMES))
    names["outputs"][0]["shape"] = [None]
    config = parsed(config_text("m", dict(ENGINE, names=names), "tensorrt_plan"))
    [inp], [out] = config.input, config.output
    assert list(out.dims) == [1] and out.HasField("reshape") and list(out.reshape.shape) == []
    assert list(inp.dims) == [11, 192] and not inp.HasField("reshape")


def test_a_model_exported_for_one_batch_takes_no_batches():
    """Inputs that fix their first dimension (an ONNX model exported for batch 1): Triton must send exactly that
    shape, so max_batch_size 0, full dims and no dynamic batching; with max_batch_size above 0 Triton would
    prepend a batch dimension of its own and ONNX Runtime would refuse the shapes."""
    names = json.loads(json.dumps(NAMES))
    names["inputs"][0]["shape"], names["outputs"][0]["shape"] = [1, 11, 192], [1, 1]
    config = parsed(config_text("m", dict(ENGINE, engine=None, names=names), "onnxruntime_onnx"))
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 11, 192] and list(config.output[0].dims) == [1, 1]


@pytest.mark.parametrize("shape", [[None, '1 ] }\noutput [ { name: "x"'], [None, 1.5], [None, -2], "11x192"])
def test_a_shape_that_is_not_sizes_never_reaches_the_config(shape):
    """Names and shapes come out of the container: a hostile model could try to write the config itself."""
    names = json.loads(json.dumps(NAMES))
    names["outputs"][0]["shape"] = shape
    with pytest.raises(TargetUnsupported, match="is not a list of sizes"):
        config_text("m", dict(ENGINE, names=names), "tensorrt_plan")


def test_a_manifest_without_output_shapes_is_refused():
    names = dict(NAMES, outputs=[{"name": "dense_3", "keras_tensor": "", "frozen": "", "imported": ""}])
    with pytest.raises(TargetUnsupported, match="output shapes"):
        config_text("m", dict(ENGINE, names=names), "tensorrt_plan")


@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_build_writes_a_triton_model_and_replaces_only_its_own(trtkit, models, tmp_path):
    repo, out = tmp_path / "repo", tmp_path / "out"
    args = ["build", models / "origin_lstm.h5", *STANDIN_ARGS, "--target", "onnx", "--out", out, "--triton-repo", repo]
    result = trtkit(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    model = repo / "origin_lstm"
    assert sorted(p.relative_to(model).as_posix() for p in model.rglob("*")) == ["1", "1/model.onnx", "config.pbtxt"]
    assert (model / "1" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
    config = parsed((model / "config.pbtxt").read_text())
    assert (config.platform, config.max_batch_size) == ("onnxruntime_onnx", 1024)
    assert [(t.name, list(t.dims)) for t in config.input] == [("lstm_1_input", [11, 192])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("dense_3", [1])]
    assert json.loads((out / "trtkit.json").read_text())["options"]["triton_repo"] == str(repo)

    assert trtkit(*args).returncode == 0                      # its own folder is replaced
    (model / "notes.txt").write_text("mine")
    result = trtkit(*args)
    assert result.returncode == 16 and "holds files trtkit did not write (notes.txt)" in result.stderr
    assert (model / "notes.txt").read_text() == "mine"

    frozen = trtkit("build", models / "origin_lstm.h5", *STANDIN_ARGS, "--target", "frozen", "--out", tmp_path / "f",
                    "--triton-repo", repo)
    assert frozen.returncode == 19 and "not --target frozen" in frozen.stderr and not (tmp_path / "f").exists()
