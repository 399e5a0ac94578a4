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
    return Source(model, samples, calibration, check, references, outputs)
