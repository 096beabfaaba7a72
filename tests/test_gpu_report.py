"""benchmarks/gpu_proof/report.py's zoo-bench and precision tables, from files as run.sh writes them (pure logic)."""
import json
import re

from gpu_proof import report


def _bench(device, rows):
    return json.dumps({"device": device, "rows": rows})


def test_zoo_bench_puts_keras_beside_the_engine_each_with_its_device(tmp_path):
    engine = [{"batch": 1, "framework": "tensorrt", "mode": "on-device", "median_ms": 0.1},
              {"batch": 1, "framework": "trtkit-runtime", "mode": "end-to-end", "median_ms": 0.5},
              {"batch": 1, "framework": "tensorrt", "mode": "end-to-end", "median_ms": 9.0},
              {"batch": 64, "framework": "trtkit-runtime", "mode": "end-to-end", "median_ms": 2.0}]
    (tmp_path / "zoo-bench-vit.keras.json").write_text(_bench("gpu: NVIDIA H100", engine))
    (tmp_path / "keras3-vit.keras.jsonl").write_text("\n".join(json.dumps(line) for line in [
        {"gpu": "NVIDIA H100", "keras": "3.15.1", "keras_backend": "torch"},
        {"batch": 1, "keras-predict": {"end_to_end_ms": 40.0}, "keras-call": {"end_to_end_ms": 5.0}}]))
    (tmp_path / "zoo-bench-gru.h5.json").write_text(_bench("gpu: NVIDIA H100", engine[:2]))
    (tmp_path / "zoo-bench-broken.keras.json").write_text("")
    (tmp_path / "zoo-bench-broken.keras.log").write_text("error: no engine | here\n")
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in report.zoo_bench_lines(tmp_path)[2:]
            if line]
    assert rows[0][0] == "broken.keras" and "error: no engine \\| here" in rows[0][2]
    assert rows[1][1:5] == ["1", "gpu: NVIDIA H100", "0.1", "0.5"] and rows[1][5:] == [""] * 4, \
        "no Keras rows: the engine alone"
    vit = rows[2:]
    assert [r[1] for r in vit] == ["1", "64"], "one row per batch"
    assert vit[0][4:] == ["0.5", "gpu: NVIDIA H100 (Keras 3.15.1, torch)", "40", "5", "10"], "trtkit.runtime's row"
    assert vit[1][3:] == ["", "2"] + [""] * 4, "a batch Keras did not run has no Keras cells"


# Kernels of the H100's TensorRT 8.6 engines (seventeenth session), as its one-line inspector listing names them.
_KERNELS = {"f16": "sm80_xmma_fprop_implicit_gemm_indexed_wo_smem_f16f16_f16f16_f16_nhwckrsc_nhwc_tilesize128x32x64",
            "f32": "sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize256x64x8_stage3_warpsize2x2x1_ffma_aligna4",
            "i8": "sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32_nchw",
            "i8 weights, f32 input": "sm90_xmma_fprop_implicit_gemm_i8f32_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32_nchw",
            "other": "sm50_xmma_pooling_tiled_FP32NCHW_kMAX_tP7_tQ8_tR3_tS3_tU2_tV2_tUnroll6_tThreads255"}


def _listing(*kernels):
    return "Layers:\n" + "".join(
        f"Name: layer{i}, LayerType: CaskConvolution, Inputs: [ {{ Format/Datatype: N/A due to dynamic shapes }}], "
        f"TacticName: {name}, TacticValue: 0x1, StreamId: 0, Metadata: [ONNX Layer: n{i}]\x1e\n"
        for i, name in enumerate(kernels)) + "Name: copy, LayerType: Reformat, Inputs: [], Outputs: []\n"


def test_kernels_are_counted_by_the_type_their_names_give():
    """A dynamic-shape engine's listing says "N/A" where the types go, but names every kernel, and the name gives
    its types: the way the FP32 rewrite engine on TensorRT 8.6 showed for what it was."""
    listing = _listing(*_KERNELS.values(), _KERNELS["f16"])
    assert report.kernel_types(listing) == {"fp16": 2, "fp32": 1, "int8": 2, "other": 1}
    assert report.kernel_types("") == {}


def test_the_precision_table_gives_each_engines_size_beside_its_times(tmp_path):
    """An engine's size shows the types TensorRT chose (on the H100 a rewrite engine twice the flags engine's
    size was FP32 in effect), and so do its kernels (from layer_profile.py's listing); a build that failed has
    neither; an auto build names the recipe whose engine it kept."""
    (tmp_path / "proof.log").write_text("=== build-resnet-fp16-flags: exit 0\n=== build-resnet-fp16-rewrite: exit 17\n"
                                        "=== build-masking-lstm-fp16-auto: exit 0\n")
    (tmp_path / "build-masking-lstm-fp16-auto.json").write_text(json.dumps({"engine": {"recipe": "rewrite"}}))
    (tmp_path / "build-resnet-fp16-flags.json").write_text(json.dumps({"engine": {
        "engine_bytes": 48698020, "layer_precisions": {"fp32": 2, "fp16": 70}}}))
    (tmp_path / "build-resnet-fp16-rewrite.log").write_text("error: no engine\n")
    (tmp_path / "runtime-resnet-fp16-flags.jsonl").write_text(json.dumps(
        {"batch": 1024, "device_ms": 0.5, "max_abs_err_vs_keras": 1e-3}))
    profile = ({"tensorrt": "8.6.0", "engine_layers": _listing(_KERNELS["f16"], _KERNELS["f16"], _KERNELS["other"])},
               {"batch": 1, "plain_run_ms": 0.6})
    (tmp_path / "layers-resnet-fp16-flags.jsonl").write_text("== TensorRT ==\n" + "\n".join(map(json.dumps, profile)))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in report.precision_lines(tmp_path)[2:] if line]
    assert rows[0] == ["resnet-fp16", "flags", "exit 0", "48.7", "70 fp16, 2 fp32", "2 fp16, 1 other", "", "",
                       "0.5, 1.00e-03"]
    assert rows[1][:6] == ["resnet-fp16", "rewrite", "**exit 17**: error: no engine", "", "", ""]
    assert rows[2][:3] == ["masking-lstm-fp16", "auto: rewrite", "exit 0"]


def test_the_rewrite_types_table_gives_a_row_per_way_of_asking(tmp_path):
    """benchmarks/rewrite_types.py's lines: what each variant asked, what TensorRT built, and its warnings; a
    variant that built no engine says so."""
    lines = [{"tensorrt": "8.6.0", "onnx": "/export/model.fp16.onnx"},
             {"variant": "trtkit", "asked": {"fp16": 120, "fp32": 3, "unset": 40}, "first_asked_fp32": [],
              "build_s": 26.5, "warnings": 4, "first_warnings": ["w1", "w2", "w3", "w4"], "engine_mb": 49.1,
              "engine_layers": _listing(_KERNELS["f16"]), "device_ms": {"1": 0.5, "64": 0.56, "1024": 1.3}},
             {"variant": "obey", "asked": {"fp16": 120, "fp32": 3, "unset": 40}, "first_asked_fp32": [],
              "build_s": 3.0, "warnings": 0, "first_warnings": []}]
    (tmp_path / "rewrite-types-resnet-fp16.jsonl").write_text("\n".join(map(json.dumps, lines)))
    text = report.rewrite_types_lines(tmp_path)
    assert text[0] == "`resnet-fp16`:"
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text[4:] if line]
    assert rows == [["trtkit", "120/3/40", "26.5", "49.1", "1 fp16", "0.5, 0.56, 1.3", "4", "w1; w2; w3"],
                    ["obey", "120/3/40", "3", "no engine", "", "", "0", ""]]
