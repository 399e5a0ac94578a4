"""The source model as both formats start from it: loaded, adapted to positional tensors,
run on the example and calibration samples for the reference outputs every stage is
measured against, its outputs named and typed."""
from dataclasses import dataclass
from typing import Any

from . import adapt, inputs, load, verify
from .conversion import MAX_CALIBRATION_SAMPLES, Conversion, Module, Sample, TensorSpec


@dataclass
class Source:
    """What every later stage reads of the source model."""
    model: Module
    samples: list[Sample]
    calibration: list[Sample]
    # The samples every stage is checked on, and the source model's outputs for them.
    check: list[Sample]
    references: list[Any]
    outputs: list[TensorSpec]


def measure(c: Conversion) -> Source:
    model = load.load(c)
    samples = inputs.example_samples(c)
    model = c.float_model = adapt.adapt(c, model, samples[0])
    calibration = c.calibration = inputs.calibration_samples(c)
    c.calibration_count = len(calibration)
    check = samples + calibration[:MAX_CALIBRATION_SAMPLES]
    references = [verify.outputs_of(c, model, s, "load") for s in check]
    outputs = adapt.output_specs(c, references[0])
    c.output_names = [o["name"] for o in outputs]
    inputs.mark_dynamic_outputs(c, model, outputs)
    c.outputs = outputs
    constant = constant_outputs(c, check, references)
    if constant:
        c.warnings.append(
            f"output{'s' if len(constant) > 1 else ''} {', '.join(f'`{n}`' for n in constant)} "
            f"{'are' if len(constant) > 1 else 'is'} the same for each of the {len(check)} samples the build checked, "
            "though their inputs differ: the model ignores its inputs (degenerate or untrained weights, a head "
            "that saturates?), so verification cannot tell a right conversion from a wrong one on "
            f"{'them' if len(constant) > 1 else 'it'}; check the weights the source loads")
    return Source(model, samples, calibration, check, references, outputs)


def constant_outputs(c: Conversion, check: list[Sample], references: list[Any]) -> list[str]:
    """The names of the outputs that are equal for every sample in `check` (the source
    model's `references`), when at least two of the samples differ."""
    torch = c.torch

    def same(a: Any, b: Any) -> bool:
        return bool(a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b))

    if len(check) < 2 or all(all(same(x, y) for x, y in zip(check[0], sample)) for sample in check[1:]):
        return []
    return [c.output_names[i] for i in range(len(references[0]))
            if all(same(references[0][i], outputs[i]) for outputs in references[1:])]
