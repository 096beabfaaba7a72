"""Issue 22's zoo in CI: the fast models of benchmarks/zoo_models.py, made in the stand-in image, each exported
through the real CLI by the route that works for it and verified against Keras (benchmarks/zoo.py runs all)."""
import sys
from pathlib import Path

import pytest
from conftest import run_in_standin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import zoo  # noqa: E402
from zoo_models import FAST  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

# Keras 3 models go through Keras' own export, Keras 2 models through tf2onnx, except where the first route fails.
FALLBACKS = {
    # Keras 3 compiles a grouped convolution with XLA; Keras' export keeps that call, which ONNX does not have
    "k3_grouped_conv.keras": ("tf2onnx", "keras-export", "StatefulPartitionedCall"),
    # Normalization's statistics are tensors the model captured: Keras' export makes them inputs
    "k3_preprocessing.keras": ("tf2onnx", "keras-export", "captured"),
}
LOOPS = {"k3_masked_lstm.keras": ["lstm"], "k3_stacked_gru.keras": ["gru_1", "gru_2"],
         "k2_masking_lstm.h5": ["lstm"]}


@pytest.fixture(scope="module")
def zoo_models(standin, docker_client, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    run_in_standin(docker_client, standin, "benchmarks/zoo_models.py", folder, list(FAST))
    return folder


@pytest.mark.parametrize("name", FAST)
def test_a_zoo_model_exports_by_its_route_and_verifies(zoo_models, name, trtkit_env, tmp_path):
    result = zoo.build(zoo_models / name, tmp_path / "out", env=trtkit_env, cwd=tmp_path)
    assert result["passed"], result
    route, failed_route, why = FALLBACKS.get(name, ("keras-export" if name.endswith(".keras") else "tf2onnx",
                                                    None, None))
    assert result["route"] == route
    assert [f["route"] for f in result["failed_routes"]] == ([failed_route] if failed_route else [])
    assert all(why in f["error"] for f in result["failed_routes"])
    assert result["loops"] == LOOPS.get(name, [])
