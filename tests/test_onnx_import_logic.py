"""Pure logic of the onnx_import step (an ONNX file as MODEL)."""
import pytest

helper = pytest.importorskip("onnx.helper")

from trtkit_steps.onnx_import import default_opset  # noqa: E402


@pytest.mark.parametrize("imports, opset", [([("", 17)], 17), ([("ai.onnx", 13)], 13),
                                            ([("ai.onnx.ml", 3), ("", 15)], 15), ([("ai.onnx.ml", 3)], None)])
def test_the_opset_is_read_under_either_name_of_the_onnx_domain(imports, opset):
    """onnx.checker and ONNX Runtime take 'ai.onnx' for the default domain; max() of nothing crashed the step."""
    model = helper.make_model(helper.make_graph([], "g", [], []),
                              opset_imports=[helper.make_opsetid(domain, version) for domain, version in imports])
    assert default_opset(model) == opset
