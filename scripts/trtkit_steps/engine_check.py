"""Can this container load the engine? TensorRT's version, the GPU, and a deserialization (no inference).

    python3 -m trtkit_steps.engine_check PLAN.json

`trtkit check` runs it in the deployment image with the GPU the engine would run on.
"""
import os

from trtkit_steps import contract
from trtkit_steps.errors import Unsupported, first_line
from trtkit_steps.events import emit, run_main, step
from trtkit_steps.storage import read_bytes
from trtkit_steps.trt import gpu
from trtkit_steps.trt.settings import import_tensorrt


def main(argv):
    contract.read_plan(argv[0])
    engine_path = os.path.join(os.path.dirname(os.path.abspath(argv[0])), contract.ARTIFACTS, "model.plan")
    trt = import_tensorrt()
    if trt is None:
        raise Unsupported("this image has no TensorRT Python API (8.0 or newer) to load the engine with")
    with step("engine-check"):
        gpu_name, capability = gpu.device_info()
        try:
            engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(read_bytes(engine_path))
            error = None if engine is not None else ("TensorRT could not deserialize it (`trtkit --verbose check` "
                                                     "shows its log)")
        except Exception as e:  # TensorRT raises its own types per version
            error = first_line(e)
    emit("engine_check", tensorrt=trt.__version__, gpu=gpu_name, compute_capability=capability,
         loadable=error is None, error=error)


if __name__ == "__main__":
    run_main(main)
