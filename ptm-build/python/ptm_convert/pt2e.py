"""INT8 for a .pte: PT2E with ExecuTorch's XNNPACK quantizer, static per-channel or
dynamic Linear with 8-bit weight-only embeddings; `quantize_skip`'s modules left
unannotated, so they stay float."""
import warnings
from typing import Optional

from .common import Failure, last_frames, log, native_stderr
from .conversion import MAX_CALIBRATION_SAMPLES, Conversion
from .quantize import skipped_modules


def quantize(c: Conversion, program, calibration):
    """The exported program's module, prepared, calibrated and converted to INT8."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    kind = c.decl["quantize"]
    log(c.name, f"quantizing ({kind} INT8, XNNPACK, PT2E)")
    quantizer = make_quantizer(kind, skipped_modules(c, c.float_model))
    printed: list[str] = []
    try:
        with warnings.catch_warnings(), native_stderr(printed):
            warnings.simplefilter("ignore")
            prepared = prepare_pt2e(program.module(), quantizer)
            for sample in calibration[:MAX_CALIBRATION_SAMPLES]:
                prepared(*sample)
            return convert_pt2e(prepared)
    except Exception as e:
        raise Failure("quantize", f"{kind} INT8 for XNNPACK failed: {type(e).__name__}: {str(e).strip()}",
                      "keep the model in float with quantize = \"none\"", last_frames(3))


def make_quantizer(kind, skipped):
    """ExecuTorch's XNNPACK quantizer for `kind`, with 8-bit embeddings for dynamic,
    annotating nothing inside the `skipped` modules."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)

    class Quantizer(XNNPACKQuantizer):  # type: ignore[misc]  # torch's classes are Any here
        def transform_for_annotation(self, model):
            return lift_scalars(model)

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=kind == "dynamic")
    xnnpack = Quantizer().set_global(config)
    if skipped:
        # XNNPACKQuantizer.set_module_name refuses None (executorch 1.5.1: "quantization_config
        # == None is not supported yet"); a filter is what its annotators consult per node.
        xnnpack.set_filter_function(lambda node: inside(node, skipped) is None)
    if kind != "dynamic":
        return xnnpack
    import executorch.kernels.quantized  # noqa: F401  (registers embedding_byte for export)
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer
    return ComposableQuantizer([embedding_quantizer(skipped), xnnpack])


def embedding_quantizer(skipped):
    """Every aten.embedding outside the `skipped` modules to 8-bit weights, one scale and
    float zero point per row, as the .ptl's float_qparams_weight_only_qconfig quantizes
    them. torchao's EmbeddingQuantizer (0.18) annotates the same (with no way to skip a
    module) but observes with eps = 2**-12, and its observer replaces a row's scale below
    eps by 1.0: a row whose values span less than 255 * 2**-12 = 0.062 dequantizes to its
    minimum everywhere (about 5% of the rows of a 32-wide embedding initialised with std
    0.02, as Hugging Face initialises). Here eps is float32's, the qconfig's own."""
    import torch
    from torchao.quantization.pt2e.observer import PerChannelMinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec, Quantizer
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY
    spec = QuantizationSpec(dtype=torch.uint8, qscheme=torch.per_channel_affine_float_qparams, ch_axis=0,
                            observer_or_fake_quant_ctr=PerChannelMinMaxObserver.with_args(eps=torch.finfo(torch.float32).eps))

    class Embeddings(Quantizer):  # type: ignore[misc]
        def annotate(self, model):
            for node in model.graph.nodes:
                if node.target == torch.ops.aten.embedding.default and inside(node, skipped) is None:
                    node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map={node.args[0]: spec})
            return model

        def validate(self, model):
            pass

    return Embeddings()


def lift_scalars(model):
    """XNNPACKQuantizer.transform_for_annotation (executorch 1.5.1) turns the scalar
    operand of every aten.add.Tensor and aten.mul.Tensor into a float32 buffer, so that
    a quantized add or mul has a tensor to observe. An integer node changes type with it:
    Hugging Face's attention mask indexes with `arange(n) + 0`, which became float32, and
    the prepared graph failed in aten.index ("tensors used as indices must be long, int,
    byte or bool tensors"); RoBERTa's position ids (`cumsum(mask) + 0`) failed likewise.
    The same lifting, with each constant in its node's own dtype (as ExecuTorch's fix,
    pytorch/executorch#22065, after 1.5.1, does)."""
    import torch
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor):
            continue
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            continue
        args = []
        for arg in node.args:
            if isinstance(arg, torch.fx.Node):
                args.append(arg)
                continue
            constant = torch.tensor(arg, dtype=value.dtype)
            name = get_new_attr_name_with_prefix("_tensor_constant_")(model)
            model.register_buffer(name, constant)
            with model.graph.inserting_before(node):
                attr = model.graph.create_node("get_attr", name, (), {})
            attr.meta["val"] = value.fake_mode.from_tensor(constant, static_shapes=True)
            args.append(attr)
        node.args = tuple(args)
    model.recompile()
    return model


def inside(node, modules) -> Optional[str]:
    """The one of `modules` (module paths) that `node` was traced in, or None."""
    for path in module_paths(node):
        if path in modules:
            return path
    return None


def module_paths(node) -> list[str]:
    """The modules `node` was traced in, outermost first, as model.named_modules() names
    them (torch.export records them in nn_module_stack)."""
    stack = node.meta.get("nn_module_stack") or {}
    return [str(path).removeprefix("L['self'].") for path, _ in stack.values()]
