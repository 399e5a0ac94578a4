"""Per-output comparison of a converted module with the source model.

Each output is judged against its own source output: a large output cannot hide a
small one that quantization destroyed, and a float output is never measured against
an integer output's values. Float outputs get a relative error (max |converted - source|
over max |source|) and, when classifier-shaped, top-1 agreement; integer and bool outputs
count the elements that differ.
"""
import math
from typing import Any, Callable, NoReturn

from .conversion import OutputDrift, Sample, StageDrift, Tensor, Torch

# A float output whose largest source magnitude is below this carries no signal (a
# randomly initialised network, BatchNorm statistics at their defaults): relative error
# means nothing there, and the error message says so.
DEGENERATE = 1e-6


def plain(tensor: Tensor) -> Tensor:
    """The output as a plain tensor, dequantized if need be."""
    return tensor.dequantize() if tensor.is_quantized else tensor


def is_exact(tensor: Tensor) -> bool:
    """Integer and bool outputs must match element for element, not within a tolerance."""
    return not (tensor.is_floating_point() or tensor.is_complex())


def classifier_shaped(tensor: Tensor) -> bool:
    return tensor.is_floating_point() and 1 <= tensor.dim() <= 2 and tensor.shape[-1] > 1


def measure(torch: Torch, stage: str, run: Callable[[Sample], tuple[Tensor, ...]], samples: list[Sample],
            references: list[tuple[Tensor, ...]], names: list[str], on_shape_error: Callable[[str], NoReturn],
            top1_only: int = 0) -> StageDrift:
    """Runs `run(sample)` on every sample and compares each output with the source's.
    The last `top1_only` samples count towards top-1 agreement alone: they are there so
    that one flipped row cannot decide it, and the other figures keep the meaning their
    tolerances were set for (a maximum over more samples only grows).

    Returns {"stage", "samples", "outputs": [per-output figures]}, `samples` counting
    the others; calls `on_shape_error(message)` (which raises) when an output's shape
    changed.
    """
    counted = len(samples) - top1_only
    totals: list[dict[str, Any]] = [{"name": name, "max_abs": 0.0, "source_max_abs": 0.0, "agree": 0, "rows": 0,
               "mismatched": 0, "elements": 0, "exact": False} for name in names]
    for index, (sample, reference) in enumerate(zip(samples, references)):
        produced = run(sample)
        if len(produced) != len(reference):
            on_shape_error(f"after `{stage}` the model returns {len(produced)} output(s), the source model {len(reference)}")
        for total, ref, out in zip(totals, reference, produced):
            ref, out = plain(ref), plain(out)
            if tuple(ref.shape) != tuple(out.shape):
                on_shape_error(f"after `{stage}` output `{total['name']}` has shape {list(out.shape)}, "
                               f"the source model gives {list(ref.shape)}")
            if index < counted:
                add(torch, total, ref, out)
            elif classifier_shaped(ref) and not is_exact(ref):
                add_top1(total, ref.double(), out.double())
    return {"stage": stage, "samples": counted, "outputs": [finish(t) for t in totals]}


def add(torch: Torch, total: dict[str, Any], ref: Tensor, out: Tensor) -> None:
    if not ref.numel():
        return
    r, o = ref.double(), out.double()
    diff = torch.nan_to_num((r - o).abs(), nan=math.inf, posinf=math.inf)
    total["max_abs"] = max(total["max_abs"], diff.max().item())
    total["source_max_abs"] = max(total["source_max_abs"], torch.nan_to_num(r.abs(), nan=0.0, posinf=0.0).max().item())
    total["elements"] += ref.numel()
    if is_exact(ref):
        total["exact"] = True
        total["mismatched"] += int(ref.ne(out.to(ref.dtype)).sum().item())
    elif classifier_shaped(ref):
        add_top1(total, r, o)


def add_top1(total: dict[str, Any], ref: Tensor, out: Tensor) -> None:
    total["agree"] += int((ref.argmax(-1) == out.argmax(-1)).sum().item())
    total["rows"] += ref.argmax(-1).numel()


def finish(total: dict[str, Any]) -> OutputDrift:
    max_abs = min(total["max_abs"], 1e300)
    scale = total["source_max_abs"]
    figures: OutputDrift = {"name": total["name"], "max_abs": max_abs, "source_max_abs": scale,
               "relative": None, "top1": None, "top1_rows": None, "top1_interval": None, "mismatched": None,
               "elements": total["elements"]}
    if total["exact"]:
        figures["mismatched"] = total["mismatched"]
        return figures
    figures["relative"] = min(max_abs / scale, 1e300) if scale > 0 else (0.0 if max_abs == 0 else 1e300)
    if total["rows"]:
        figures["top1"] = total["agree"] / total["rows"]
        figures["top1_rows"] = total["rows"]
        figures["top1_interval"] = list(wilson_interval(total["agree"], total["rows"]))
    return figures


def wilson_interval(agree: int, rows: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of an agreement of `agree` in `rows`: what the
    share could be over every input, given the rows compared (it stays inside 0..1 and
    is honest at 8 rows, where the normal approximation is not)."""
    share = agree / rows
    centre = (share + z * z / (2 * rows)) / (1 + z * z / rows)
    half = z * math.sqrt(share * (1 - share) / rows + z * z / (4 * rows * rows)) / (1 + z * z / rows)
    return max(0.0, centre - half), min(1.0, centre + half)


def top1_text(o: OutputDrift, required: str = "") -> str:
    """`top-1 0.953 over 200 rows (95% interval 0.916-0.975)`, with `required` after the
    figure."""
    interval = o.get("top1_interval")
    shown = f"top-1 {o['top1']:.3f}{required}"
    rows = o.get("top1_rows")
    if rows and interval:
        shown += f" over {rows} row{'' if rows == 1 else 's'} (95% interval {interval[0]:.3f}-{interval[1]:.3f})"
    return shown


def problems(stage_drift: StageDrift, tolerance: dict[str, float], quantized: bool) -> list[tuple[OutputDrift, str]]:
    """Each output past the tolerance, with why: [(output figures, reason)]."""
    found: list[tuple[OutputDrift, str]] = []
    for o in stage_drift["outputs"]:
        if o["mismatched"] is not None:
            if not o["mismatched"]:
                continue
            share = 1 - o["mismatched"] / max(o["elements"], 1)
            if not quantized:
                found.append((o, f"{o['mismatched']} of {o['elements']} elements differ; integer and bool outputs of a "
                                 "float model must match exactly"))
            elif share < tolerance["top1"]:
                found.append((o, f"{o['mismatched']} of {o['elements']} elements differ (agreement {share:.3f}, required "
                                 f"{tolerance['top1']:.3f}: an integer output of an INT8 model, such as an arg-max, "
                                 "is held to the top-1 tolerance)"))
            continue
        if o["relative"] is not None and o["relative"] > tolerance["relative"]:
            found.append((o, f"relative error {o['relative']:.4g} (allowed {tolerance['relative']:.4g}), "
                             f"max abs {o['max_abs']:.4g}, source values up to {o['source_max_abs']:.4g}"))
        elif o["top1"] is not None and o["top1"] < tolerance["top1"]:
            required = f" (required {tolerance['top1']:.3f})"
            found.append((o, f"{top1_text(o, required).replace('top-1', 'top-1 agreement', 1)}, relative error {o['relative']:.4g}"))
    return found


def summary(stage_drift: StageDrift) -> list[str]:
    """One line per output of a stage, for error messages."""
    lines: list[str] = []
    for o in stage_drift["outputs"]:
        if o["mismatched"] is not None:
            lines.append(f"`{o['name']}`: {o['mismatched']} of {o['elements']} elements differ")
        else:
            top1 = "" if o["top1"] is None else f", {top1_text(o)}"
            lines.append(f"`{o['name']}`: relative {o['relative']:.4g}, max abs {o['max_abs']:.4g}, "
                         f"source values up to {o['source_max_abs']:.4g}{top1}")
    return lines


def degenerate(output: OutputDrift) -> bool:
    return output["mismatched"] is None and output["source_max_abs"] < DEGENERATE
