"""The self-check's reference data: a few of the samples the build verified on, the
source model's outputs for them and the tolerance they were held to, written beside
the artifact as `reference.bin`. The app's runtime reads it back (ptm/src/self_check.rs)
to check, on the device, that the model still gives what it gave at build time.

Layout, little-endian:
    magic b"PTMREF01"
    u32 key length, key (UTF-8): the declaration's key, which the artifact names too
    f64 relative tolerance, f64 top-1 tolerance, u8 1 when the model is quantized
    u32 output count, then per output: u32 length, name (UTF-8)
    u32 counted: the first `counted` samples count for every figure, the rest for top-1
    the samples' inputs, then the source model's outputs, each in the runner's samples
    layout (pte.encode: u32 count; per sample u32 tensors; per tensor i32 dtype code,
    u32 rank, i64 dims, u64 byte length, bytes)
"""
import os
import struct

from . import compare
from .conversion import Conversion, Sample, Tensor

MAGIC = b"PTMREF01"
FILE = "reference.bin"
# What the reference data may hold beyond its first sample: small enough to embed in
# an app beside its model, large enough for a top-1 verdict on a classifier's outputs.
BYTES = 1 << 20


def tensor_bytes(tensor: Tensor) -> int:
    return int(tensor.element_size() * tensor.numel())


def sample_bytes(sample: Sample, outputs: tuple[Tensor, ...]) -> int:
    return sum(tensor_bytes(t) for t in sample) + sum(tensor_bytes(compare.plain(t)) for t in outputs)


def chosen(checked: list[Sample], references: list[tuple[Tensor, ...]], extra: list[Sample],
           extra_references: list[tuple[Tensor, ...]]) -> tuple[list[Sample], list[tuple[Tensor, ...]], int]:
    """The samples the reference keeps, their outputs, and how many of them count for
    every figure: the verified samples in order, then the top-1 ones, while they fit
    BYTES (the first always)."""
    samples: list[Sample] = []
    outputs: list[tuple[Tensor, ...]] = []
    used = 0
    counted = 0
    for index, (sample, reference) in enumerate(zip(checked + extra, references + extra_references)):
        size = sample_bytes(sample, reference)
        if samples and used + size > BYTES:
            break
        samples.append(sample)
        outputs.append(tuple(compare.plain(t) for t in reference))
        used += size
        if index < len(checked):
            counted += 1
    return samples, outputs, counted


def encode(c: Conversion, samples: list[Sample], outputs: list[tuple[Tensor, ...]], counted: int) -> bytes:
    from .pte import encode as encode_samples

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack("<I", len(data)) + data

    tolerance = c.decl["tolerance"]
    parts = [MAGIC, text(c.job.key),
             struct.pack("<ddB", float(tolerance["relative"]), float(tolerance["top1"]), c.decl["quantize"] != "none"),
             struct.pack("<I", len(c.output_names)), *(text(name) for name in c.output_names),
             struct.pack("<I", counted), encode_samples(c.torch, samples), encode_samples(c.torch, outputs)]
    return b"".join(parts)


def write(c: Conversion, samples: list[Sample], references: list[tuple[Tensor, ...]]) -> None:
    """Writes the reference data beside c.out, from the samples the runtime stage was
    verified on (the last c.top1_only of them counting for top-1 alone)."""
    split = len(samples) - c.top1_only
    kept, outputs, counted = chosen(samples[:split], references[:split], samples[split:], references[split:])
    with open(os.path.join(os.path.dirname(c.out), FILE), "wb") as f:
        f.write(encode(c, kept, outputs, counted))
