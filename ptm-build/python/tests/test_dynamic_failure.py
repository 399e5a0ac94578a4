"""What a .pte build says when torch.export cannot keep a declared dimension dynamic."""
from types import SimpleNamespace
from typing import Any

from ptm_convert import pte

SPECIALIZED = """Constraints violated (tokens)! For more information, run with TORCH_LOGS="+dynamic".
  - You marked tokens as dynamic but your code specialized it to be a constant (32). If you're using mark_dynamic, either remove it or use maybe_mark_dynamic. If you're using Dim.DYNAMIC, replace it with either Dim.STATIC or Dim.AUTO.
Suggested fixes:
  tokens = 32
"""

GUARDED = """Constraints violated (tokens)! For more information, run with TORCH_LOGS="+dynamic".
  - Not all values of tokens = L['x'].size()[1] in the specified range satisfy the generated guard 2 <= L['x'].size()[1] and L['x'].size()[1] <= 64
Suggested fixes:
  tokens = Dim('tokens', max=64)
"""


def conversion(shape: list[Any]) -> Any:
    return SimpleNamespace(name="reader", decl={"inputs": [{"name": "x", "dtype": "float32", "shape": shape}]})


def test_a_limit_suggests_the_range_torch_found() -> None:
    message, fix = pte.dynamic_failure(conversion([1, {"name": "tokens", "example": 32}, 8]), Exception(GUARDED))
    assert message.startswith("model `reader`: torch.export could not keep `tokens` of input `x` (dimension 1) dynamic, "
                              "declared \"tokens=32\": torch: Not all values of tokens")
    assert "<= 64" in message
    assert fix.startswith("declare the sizes the model takes, as torch suggests: \"tokens=32:1..64\" in "
                          "package.metadata.models.reader.inputs[0].shape")


def test_a_specialised_dimension_suggests_a_fixed_size_or_a_ptl() -> None:
    shape = [1, {"name": "tokens", "example": 32, "min": 1, "max": 128}]
    message, fix = pte.dynamic_failure(conversion(shape), Exception(SPECIALIZED))
    assert "declared \"tokens=32:1..128\"" in message
    assert "torch: You marked tokens as dynamic but your code specialized it to be a constant (32)" in message
    assert "mark_dynamic" not in message
    assert "declare it fixed (32)" in fix and "format = \"ptl\"" in fix
    # nn.LSTM and nn.GRU run as scan loops, which keep their length dynamic.
    assert "LSTM" not in fix and "GRU" not in fix and "a Python loop over it" in fix


def test_other_errors_are_left_to_the_general_message() -> None:
    assert pte.dynamic_failure(conversion([1, {"name": "tokens", "example": 32}]), Exception("boom")) is None
    assert pte.dynamic_failure(conversion([1, 4]), Exception(SPECIALIZED)) is None
