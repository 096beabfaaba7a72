"""Building, running and checking engines with NVIDIA's Polygraphy (TensorRT 8.0 and newer).

Polygraphy is pinned by trtkit and shipped into the container beside these
scripts, so every image runs the same version. What trtkit adds on top: the
network's inputs must be the model's, tactic sources can be left out, INT8
calibrates on fixed-size batches, float inputs and outputs can be float16
(--io-precision), and the timing cache is read and written where the step says.
"""
import json
import os
import re
import tempfile

import numpy as np

from trtkit_steps.errors import StepError, Unsupported, first_line
from trtkit_steps.storage import read_bytes, write_atomic
from trtkit_steps.trt.calibration import CALIBRATION_BATCH
from trtkit_steps.trt.settings import check_optimization_level, major_of, strongly_typed, tactic_mask


def import_polygraphy():
    """Polygraphy's TensorRT backend and comparator, quiet unless something warns."""
    try:
        from polygraphy import comparator
        from polygraphy.backend import trt as polygraphy_trt
        from polygraphy.logger import G_LOGGER
    except ImportError as e:
        raise StepError(f"Polygraphy is missing from the container ({e}): trtkit ships it with its scripts") from None
    G_LOGGER.module_severity = G_LOGGER.WARNING
    return polygraphy_trt, comparator


class PolygraphyApi(object):
    name = "polygraphy"
    has_loops = None    # known once build() has parsed the network

    def __init__(self, trt):
        self.trt = trt
        self.version = trt.__version__
        self.major = major_of(self.version)
        self.api, self.comparator = import_polygraphy()

    def build(self, job):
        api = self.api
        if job.settings.strict_timing_cache and not hasattr(self.trt.BuilderFlag, "ERROR_ON_TIMING_CACHE_MISS"):
            raise Unsupported(f"--strict-timing-cache needs a TensorRT that can refuse timing-cache misses "
                              f"(BuilderFlag.ERROR_ON_TIMING_CACHE_MISS); TensorRT {self.version} cannot")
        # rewrite: strongly typed, so TensorRT keeps the ONNX model's float16 / Q/DQ types and every FP32 node;
        # before TensorRT 10 its layers are asked to keep those types
        typed = strongly_typed(self.major, job.settings.recipe)
        try:
            network = api.network_from_onnx_path(job.onnx, strongly_typed=True) if typed else \
                api.network_from_onnx_path(job.onnx)
        except Exception:   # Polygraphy's own exception says only "Could not parse ONNX correctly"
            raise StepError(f"TensorRT {self.version} cannot parse {os.path.basename(job.onnx)}: "
                            f"{'; '.join(parser_errors(self.trt, job.onnx)) or 'its parser gave no reason'}") from None
        if not typed and job.settings.recipe == "rewrite" and job.settings.precision == "fp16":
            keep_onnx_types(self.trt, network[1])
        _check_network_inputs(network[1], job.settings.profiles)
        self.has_loops = has_loops(self.trt, network[1])
        _set_io_precision(self.trt, network[1], job.settings.io_precision)
        config = api.PostprocessConfig(self._create_config(job), _adjust_config(self.trt, job))
        engine, errors = _engine_and_errors(
            lambda: api.engine_bytes_from_network(network, config, save_timing_cache=job.save_timing_cache))
        if not engine:
            recipe = job.settings.recipe
            raise StepError(f"TensorRT {self.version} could not build an engine from {os.path.basename(job.onnx)}"
                            f"{f' (--precision-recipe {recipe})' if recipe != 'fp32' else ''}: "
                            f"{'; '.join(errors[-2:]) or 'TensorRT logged no error (--verbose shows its log)'}")
        write_atomic(job.engine, bytes(engine))

    def _create_config(self, job):
        settings, trt = job.settings, self.trt
        workspace = {trt.MemoryPoolType.WORKSPACE: settings.workspace} if settings.workspace else None
        calibrator = self.api.Calibrator(_calibration_batches(job.calibration),
                                         cache=job.calibration.cache_path) if job.calibration else None
        has_levels = hasattr(trt.IBuilderConfig, "builder_optimization_level")
        flags = not strongly_typed(self.major, settings.recipe)    # a strongly typed network takes none
        weak_rewrite = flags and settings.recipe == "rewrite"
        check_optimization_level(has_levels, settings.optimization_level, self.version)
        return self.api.CreateConfig(
            builder_optimization_level=settings.optimization_level if has_levels else None,
            tf32=settings.tf32, fp16=flags and settings.precision in ("fp16", "int8"),  # INT8 falls back to FP16
            int8=flags and settings.precision == "int8",
            profiles=[_profile(self.api, p) for p in settings.all_profiles],
            calibrator=calibrator, memory_pool_limits=workspace,
            precision_constraints="prefer" if weak_rewrite else None,
            load_timing_cache=job.load_timing_cache,  # None: start from an empty cache
            error_on_timing_cache_miss=settings.strict_timing_cache)

    def run(self, engine_path, batches, scratch, profile=0):
        """[{output name: array}]: one inference per batch of host inputs, on optimization profile `profile`. Inputs
        are cast to the engine's types (float16 with --io-precision fp16, as trtkit.runtime casts them), and float16
        outputs come back as float32, Keras' type."""
        with self.api.TrtRunner(self.load(engine_path), optimization_profile=profile) as runner:
            meta = runner.get_input_metadata(use_numpy_dtypes=False)
            return [_as_keras_types(runner.infer({name: np.asarray(array, dtype=meta[name].dtype.numpy())
                                                  for name, array in batch.items()}))
                    for batch in batches]

    def load(self, engine_path):
        try:
            # From bytes: this Polygraphy's engine_from_path streams the file with TensorRT 10's IStreamReaderV2.
            return self.api.engine_from_bytes(read_bytes(engine_path))
        except Exception as e:  # Polygraphy raises its own exception; TensorRT's log says more
            raise StepError(f"TensorRT cannot load the engine ({first_line(e)}): engines load only with the "
                            "TensorRT version and GPU model that built them") from None

    def layer_precisions(self, engine_path):
        """What TensorRT chose: {"fp32" / "fp16" / "int8": engine layers whose output has that type}, from its engine
        inspector (Polygraphy builds with detailed profiling verbosity). None where this TensorRT has no inspector
        (before 8.2) or it says nothing of types."""
        engine = self.load(engine_path)
        if not hasattr(engine, "create_engine_inspector"):
            return None
        try:
            inspector = engine.create_engine_inspector()
            # Without shapes a dynamic-shape engine's types read "N/A due to dynamic shapes" (TensorRT 8.6, H100).
            # Held here until the inspector is done, in case the binding keeps no reference to it.
            context = context_at_opt_shapes(self.trt, engine)
            inspector.execution_context = context
            info = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
            # strict=False: TensorRT 8.6 writes raw control characters into its JSON (every build failed on them).
            layers = json.loads(info, strict=False).get("Layers") or []
        except Exception:   # a convenience: the engine is verified either way
            return None
        return count_layer_precisions(layers)

    def compare(self, expected, actual, atol):
        """Polygraphy's comparison of the engine's outputs against Keras: ({output: errors}, passed).

        Each output's largest absolute error against its own tolerance decides (atol: {output: atol}, rtol 0); the
        same infinity is no error; no tolerance at all reports without a verdict (INT8).
        """
        check = self.comparator.SimpleCompareFunc(
            check_error_stat="max", rtol=0.0, infinities_compare_equal=True,
            atol=dict((name, float("inf") if limit is None else limit) for name, limit in atol.items()))
        results = check(self.comparator.IterationResult(actual, runner_name="tensorrt"),
                        self.comparator.IterationResult(expected, runner_name="keras"))
        errors = {name: {"max_abs_err": float(r.max_absdiff), "max_rel_err": float(r.max_reldiff)}
                  for name, r in results.items()}
        gated = any(limit is not None for limit in atol.values())
        return errors, all(bool(r) for r in results.values()) if gated else None


def _engine_and_errors(build):
    """(build()'s engine or None when TensorRT made none, TensorRT's error lines meanwhile): Polygraphy forwards
    TensorRT's log to its logger, and the logger copies what it prints to its log file."""
    from polygraphy.logger import G_LOGGER
    with tempfile.TemporaryDirectory() as folder:
        G_LOGGER.log_file = os.path.join(folder, "build.log")
        try:
            engine = build()
        except Exception:   # Polygraphy's "Invalid Engine" when the builder returned none
            engine = None
        finally:
            G_LOGGER.log_file = None
        with open(os.path.join(folder, "build.log")) as log:
            errors = _error_lines(log)
    return engine, [e for e in errors if "Invalid Engine" not in e]


def _error_lines(log):
    """Each error of a Polygraphy log as one line ("[E] first line", then its indented continuation lines)."""
    errors, inside = [], False
    for line in log:
        if line.startswith("[E] "):
            errors.append(line[len("[E] "):])
            inside = True
        elif inside and line[:1].isspace():
            errors[-1] += " " + line
        else:
            inside = False
    return [" ".join(e.split()) for e in errors]


def parser_errors(trt, onnx_path):
    """TensorRT's ONNX parser's errors on onnx_path, one line each ("In node 3 (importQuantizeLinear): ...")."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)   # the only mode from TensorRT 10
    network = builder.create_network(0 if explicit is None else 1 << int(explicit))
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(onnx_path):
        return []
    return [" ".join(str(parser.get_error(i)).split()) for i in range(parser.num_errors)]


def _check_network_inputs(network, profiles):
    names = sorted(network.get_input(i).name for i in range(network.num_inputs))
    if names != sorted(profiles):
        raise StepError(f"model.onnx has inputs {names} but io.json lists {sorted(profiles)}")


def _as_keras_types(outputs):
    """Copies of the outputs (the runner reuses its buffers), float16 as float32."""
    return {name: array.astype(np.float32) if array.dtype == np.float16 else array.copy()
            for name, array in outputs.items()}


def _set_io_precision(trt, network, io_precision):
    """--io-precision fp16: the network's float32 inputs and outputs become float16 (TensorRT converts inside)."""
    if io_precision == "fp32":
        return
    for tensor in [network.get_input(i) for i in range(network.num_inputs)] + \
            [network.get_output(i) for i in range(network.num_outputs)]:
        if tensor.dtype == trt.float32:
            tensor.dtype = trt.float16


def keep_onnx_types(trt, network):
    """Each layer that computes floats is asked to keep the type its ONNX node has: float16, or float32 where the
    rewrite kept a node FP32. TensorRT 8's stand-in for a strongly typed network.

    A weakly typed network does not carry those types: its float tensors read float32 but a cast's. Asked for what
    they read, ResNet50's layers came out FP32 on an H100 (its rewrite engine twice the size of the flags engine,
    with FP32's error). So the types are followed from the inputs through the casts, as they flow in ONNX, where a
    node's float inputs and outputs share one type (onnxconverter-common brackets each node it keeps FP32 by
    casts)."""
    floats = (trt.float32, trt.float16)
    types = dict((tensor.name, tensor.dtype) for tensor in (network.get_input(i) for i in range(network.num_inputs)))
    for layer in (network.get_layer(i) for i in range(network.num_layers)):
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        cast_to = _onnx_cast_type(trt, layer)
        if cast_to is not None:
            types[outputs[0].name] = cast_to
            continue
        inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
        # weights (constant layers, no inputs) have no say: the activations' type is the node's
        flowing = set(types.get(tensor.name) for tensor in inputs if tensor is not None) & set(floats)
        onnx_type = flowing.pop() if len(flowing) == 1 and all(out.dtype in floats for out in outputs) else None
        if onnx_type is not None:
            layer.precision = onnx_type
        types.update((output.name, onnx_type) for output in outputs)   # None: shapes, mixed types: TensorRT's


def _onnx_cast_type(trt, layer):
    """The type an ONNX Cast node casts to, where `layer` is one (else None). TensorRT 8.6's ONNX parser makes each
    Cast a cast layer; 8.0-8.5's made it an identity layer with its output type set (onnx-tensorrt's Cast importer).
    Knowing only the identity, trtkit followed no cast on 8.6: the float32 of the inputs flowed through the whole
    network and every layer was asked for FP32 (ResNet50's rewrite engine on an H100: FP32 kernels throughout)."""
    if layer.type == getattr(trt.LayerType, "CAST", None):
        layer.__class__ = trt.ICastLayer   # the network hands out ILayer: its type names the class (as Polygraphy does)
        return layer.to_type
    if layer.type == trt.LayerType.IDENTITY and layer.output_type_is_set(0):
        return layer.get_output_type(0)
    return None


def context_at_opt_shapes(trt, engine):
    """An execution context with every input at its first profile's OPT shape (TensorRT 8.5's tensor API)."""
    context = engine.create_execution_context()
    for name in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors)):
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            context.set_input_shape(name, engine.get_tensor_profile_shape(name, 0)[1])
    return context


_PRECISION_WORDS = (("fp16", ("half", "fp16")), ("int8", ("int8",)), ("fp32", ("float", "fp32")))
# A kernel's name gives its types, inputs first: "sm80_xmma_gemm_f16f16_f16f16_f16_...", "..._i8i8_i8i32_f32_...".
_KERNEL_TYPES = {"f16": "fp16", "bf16": "bf16", "tf32": "fp32", "f32": "fp32", "i8": "int8"}
_KERNEL_TYPE = re.compile(r"_(%s)(?:f16|bf16|tf32|f32|i8|i32)*_" % "|".join(_KERNEL_TYPES))


def count_layer_precisions(layers):
    """{precision: count} of the inspector's layers by their first output's "Format/Datatype" ("Half", or "Channel
    major FP16 format ..." where it was given an execution context), else by their kernel's name (a dynamic-shape
    engine's types read "N/A" without shapes; its kernels are named either way). Left out: TensorRT's reformatting
    copies, and Myelin's fused graphs (a Transformer's may be one layer, whose FP32 output says nothing of its
    inside)."""
    counts = {}
    for layer in layers:
        outputs = layer.get("Outputs") if isinstance(layer, dict) else None   # names alone: no details built in
        if not outputs or layer.get("LayerType") in ("Reformat", "Myelin"):
            continue
        kind = str(outputs[0].get("Format/Datatype", "")).lower()
        precision = next((name for name, words in _PRECISION_WORDS if any(word in kind for word in words)), None) \
            or kernel_precision(layer.get("TacticName"))
        if precision:
            counts[precision] = counts.get(precision, 0) + 1
    return counts or None


def kernel_precision(tactic_name):
    """"fp16" / "fp32" / "int8" / "bf16": the input type a kernel's name gives, None where it gives none (a
    pooling kernel's, "sm50_xmma_pooling_tiled_FP32NCHW_...", names its type another way). On an H100 (TensorRT
    8.6) this is how the rewrite engines showed FP32: every kernel "f32f32_f32f32_f32", the flags engine's "f16"."""
    found = _KERNEL_TYPE.search(tactic_name or "")
    return _KERNEL_TYPES[found.group(1)] if found else None


def has_loops(trt, network):
    """Whether the parsed network loops (an ONNX Loop or Scan: the boundary layers of TensorRT's ILoop)."""
    boundaries = (trt.LayerType.TRIP_LIMIT, trt.LayerType.RECURRENCE, trt.LayerType.ITERATOR,
                  trt.LayerType.LOOP_OUTPUT)
    return any(network.get_layer(i).type in boundaries for i in range(network.num_layers))


def _profile(api, profiles):
    profile = api.Profile()
    for name, shapes in profiles.items():
        profile.add(name, min=tuple(shapes["min"]), opt=tuple(shapes["opt"]), max=tuple(shapes["max"]))
    return profile


def _adjust_config(trt, job):
    """What CreateConfig has no word for: sources left out, and a fixed-size calibration profile."""

    def adjust(builder, network, config):
        if job.settings.disabled_tactics is not None:
            config.set_tactic_sources(tactic_mask(config.get_tactic_sources(), job.settings.disabled_tactics,
                                                  trt.TacticSource))
        if job.calibration:  # TensorRT calibrates at the calibration profile's OPT shape only
            profile = builder.create_optimization_profile()
            for name, array in job.calibration.arrays.items():
                shape = (_calibration_rows(job.calibration),) + tuple(array.shape[1:])
                profile.set_shape(name, shape, shape, shape)
            config.set_calibration_profile(profile)

    return adjust


def _calibration_rows(calibration):
    return min(CALIBRATION_BATCH, calibration.rows)


def _calibration_batches(calibration):
    """Whole batches of the calibration data, as Polygraphy's data loader feeds them."""
    rows = _calibration_rows(calibration)
    return [{name: array[start:start + rows] for name, array in calibration.arrays.items()}
            for start in range(0, calibration.rows - rows + 1, rows)]
