"""INT8 for a .pte: PT2E with ExecuTorch's XNNPACK quantizer, static per-channel or
dynamic Linear with 8-bit weight-only embeddings; `quantize_skip`'s modules left
unannotated, so they stay float; and a failure named after the layer it happened in."""
import traceback
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
    step, prepared = "annotating and observing the graph (prepare_pt2e)", None
    try:
        with warnings.catch_warnings(), native_stderr(printed):
            warnings.simplefilter("ignore")
            prepared = prepare_pt2e(program.module(), quantizer)
            step = "running the observed graph on the samples"
            for sample in calibration[:MAX_CALIBRATION_SAMPLES]:
                prepared(*sample)
            step = "converting the observed graph to INT8 (convert_pt2e)"
            return convert_pt2e(prepared)
    except Exception as e:
        node = failing_node(e, prepared, calibration[:MAX_CALIBRATION_SAMPLES])
        raise failure(c, kind, step, e, node)


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
    from .recurrent import outside_loops
    # XNNPACKQuantizer.set_module_name refuses None (executorch 1.5.1: "quantization_config
    # == None is not supported yet"); a filter is what its annotators consult per node.
    # Scan loops' bodies stay float too (recurrent.outside_loops says why).
    xnnpack.set_filter_function(lambda node: outside_loops(node) and inside(node, skipped) is None)
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


def layer_of(node) -> Optional[tuple[str, str]]:
    """(module path, class name) of the innermost module `node` was traced in; for a node
    that quantization added (an observer, a quantize or dequantize, a weight), that of
    the nearest node it feeds or is fed by that was traced."""
    seen, frontier = {node}, [node]
    for _ in range(8):
        for candidate in frontier:
            stack = list((candidate.meta.get("nn_module_stack") or {}).values())
            if stack:
                path, kind = stack[-1]
                return str(path).removeprefix("L['self']."), class_name(kind)
        # Users first: a weight and its quantize ops feed the layer they belong to.
        neighbours = [n for candidate in frontier for n in [*candidate.users, *candidate.all_input_nodes]]
        frontier = [n for n in neighbours if n not in seen]
        seen.update(frontier)
    return None


def class_name(kind) -> str:
    """`Linear` of nn_module_stack's class (a type, or its qualified name)."""
    return kind.__name__ if isinstance(kind, type) else str(kind).rsplit(".", 1)[-1].rstrip("'>")


def failing_node(error, prepared, samples):
    """The graph node `error` was raised at: the innermost torch.fx Node a frame of its
    traceback holds (annotation, convert_pt2e's constant folding); else, when the
    prepared graph's own code failed, which hides its frames, the node an interpreter
    stops at on the same samples."""
    import torch
    found = None
    for frame, _ in traceback.walk_tb(error.__traceback__):
        for value in frame.f_locals.values():
            if isinstance(value, torch.fx.Node):
                found = value
    if found is not None or prepared is None:
        return found
    return interpreted_failure(prepared, samples)


def interpreted_failure(module, samples):
    import torch

    class Interpreter(torch.fx.Interpreter):  # type: ignore[misc]
        def run_node(self, n):
            self.node = n
            return super().run_node(n)

    runner = Interpreter(module)
    runner.node = None
    try:
        for sample in samples:
            runner.run(*sample)
    except Exception:
        return runner.node
    return None


def failure(c: Conversion, kind, step, error, node) -> Failure:
    """The quantize stage's error: torch's, the step it came from and, when the node is
    known, the layer (as quantize_skip names it) and the fix."""
    reason = f"{type(error).__name__}: {first_line(error)}"
    layer = layer_of(node) if node is not None else None
    table = f"package.metadata.models.{c.name}"
    # The model's own module (or ptm's adapter around it) is no layer quantize_skip can take.
    if layer is None or not layer[0].startswith(c.inner_prefix) or layer[0] in ("", c.inner_prefix.rstrip(".")):
        return Failure("quantize", f"{kind} INT8 for XNNPACK failed while {step}: {reason}",
                       f"keep the model in float with quantize = \"none\" in {table}", last_frames(3))
    name, module = layer[0].removeprefix(c.inner_prefix), layer[1]
    where = f" at `{node.name}` ({node.target})" if node.op == "call_function" else ""
    return Failure("quantize", f"{kind} INT8 for XNNPACK failed in layer `{name}` ({module}){where} while {step}: {reason}",
                   f"keep that layer in float with quantize_skip = [\"{name}\"] in {table}.quantize_skip, "
                   f"or the whole model with quantize = \"none\"", last_frames(3))


def first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
