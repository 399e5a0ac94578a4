"""Small programs that the lowering tests export and hand to ExecuTorch, in the new
processes new_process.py starts (which find this module beside the tests)."""
from typing import Any


def dynamic_int8_encoder() -> Any:
    """A transformer encoder layer over a dynamic number of tokens, quantized to dynamic
    INT8 with ExecuTorch's XNNPACK quantizer and exported again, as a .pte's INT8 is."""
    import torch
    from torch.export import Dim
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    torch.manual_seed(0)
    model = torch.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True).eval()
    sample, shapes = (torch.randn(1, 8, 16),), ({1: Dim("tokens", min=2, max=16)},)
    program = torch.export.export(model, sample, dynamic_shapes=shapes, strict=False)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    prepared = prepare_pt2e(program.module(), quantizer)
    prepared(*sample)
    return torch.export.export(convert_pt2e(prepared), sample, dynamic_shapes=shapes, strict=False)
