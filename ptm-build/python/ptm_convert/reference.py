"""The self-check's reference data: a few of the samples the build verified on, the
source model's outputs for them and the tolerance they were held to, written beside
the artifact as `reference.bin`. The app's runtime reads it back (ptm/src/self_check.rs)
to check, on the device, that the model still gives what it gave at build time.

Layout, little-endian:
    magic b"PTMREF01"
    u32 key length, key (UTF-8): the declaration's key, which the artifact names too
    f64 relative tolerance, f64 top-1 tolerance, u8 1 when the model is quantized
    u32 output count, then per output: u32 length, name (UTF-8), f64 the top-1 agreement
        (or, for an integer output, the share of equal elements) the self-check requires
        of it: the top-1 tolerance, or what the build's own runtime reached on these
        samples when that is lower (fewer rows than the build verified can agree less)
    u32 counted: the first `counted` samples count for every figure, the rest for top-1
    the samples' inputs, then the source model's outputs, each in the runner's samples
    layout (pte.encode: u32 count; per sample u32 tensors; per tensor i32 dtype code,
    u32 rank, i64 dims, u64 byte length, bytes)
"""
import os
import struct
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

from . import compare
from .common import Failure
from .conversion import Conversion, Sample, Tensor, Torch

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


@dataclass
class Reference:
    """Reference data, as written and as read back."""
    key: str
    relative: float
    top1: float
    quantized: bool
    output_names: list[str]
    required_top1: list[float]
    counted: int
    samples: list[Any]
    outputs: list[Any]


def encode(torch: Torch, r: Reference) -> bytes:
    from .pte import encode as encode_samples

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack("<I", len(data)) + data

    parts = [MAGIC, text(r.key), struct.pack("<ddB", r.relative, r.top1, r.quantized),
             struct.pack("<I", len(r.output_names)),
             *(text(name) + struct.pack("<d", top1) for name, top1 in zip(r.output_names, r.required_top1)),
             struct.pack("<I", r.counted), encode_samples(torch, r.samples), encode_samples(torch, r.outputs)]
    return b"".join(parts)


def decode(torch: Torch, data: bytes) -> Reference:
    """Reads reference data back (the tools that inspect or alter it; the app's runtime
    has its own reader)."""
    from .pte import decode_at
    if not data.startswith(MAGIC):
        raise ValueError("not ptm reference data (no PTMREF01 header)")
    at = len(MAGIC)

    def text() -> str:
        nonlocal at
        (length,) = struct.unpack_from("<I", data, at)
        at += 4 + length
        return data[at - length:at].decode()

    key = text()
    relative, top1, quantized = struct.unpack_from("<ddB", data, at)
    at += 17
    (count,) = struct.unpack_from("<I", data, at)
    at += 4
    names, required = [], []
    for _ in range(count):
        names.append(text())
        required.append(struct.unpack_from("<d", data, at)[0])
        at += 8
    (counted,) = struct.unpack_from("<I", data, at)
    samples, at = decode_at(torch, data, at + 4)
    outputs, at = decode_at(torch, data, at)
    if at != len(data):
        raise ValueError(f"{len(data) - at} bytes after the last tensor")
    return Reference(key, relative, top1, bool(quantized), names, required, counted, samples, outputs)


def required_top1(c: Conversion, samples: list[Sample], outputs: list[tuple[Tensor, ...]], counted: int,
                  runtime: Callable[[Sample], tuple[Tensor, ...]]) -> list[float]:
    """Per output, what the self-check requires of its top-1 agreement (or of an integer
    output's share of equal elements): the declared tolerance, or what the build's own
    runtime reached on the kept samples when that is lower. The build judged every row
    it verified; the kept rows are fewer, and fewer rows can agree less."""
    def shape_changed(message: str) -> NoReturn:
        raise Failure(c.stage, message)

    figures = compare.measure(c.torch, "runtime", runtime, samples, outputs, c.output_names, shape_changed,
                              len(samples) - counted)
    declared = float(c.decl["tolerance"]["top1"])
    required = []
    for o in figures["outputs"]:
        share = o["top1"]
        if o["mismatched"] is not None and o["elements"]:
            share = 1 - o["mismatched"] / o["elements"]
        required.append(declared if share is None else min(declared, float(share)))
    return required


def write(c: Conversion, samples: list[Sample], references: list[tuple[Tensor, ...]],
          runtime: Callable[[Sample], tuple[Tensor, ...]]) -> None:
    """Writes the reference data beside c.out, from the samples the runtime stage was
    verified on (the last c.top1_only of them counting for top-1 alone); `runtime` runs
    a sample in the runtime that verified them."""
    split = len(samples) - c.top1_only
    kept, outputs, counted = chosen(samples[:split], references[:split], samples[split:], references[split:])
    tolerance = c.decl["tolerance"]
    data = encode(c.torch, Reference(c.job.key, float(tolerance["relative"]), float(tolerance["top1"]), c.decl["quantize"] != "none",
                                     list(c.output_names), required_top1(c, kept, outputs, counted, runtime), counted, kept,
                                     outputs))
    with open(os.path.join(os.path.dirname(c.out), FILE), "wb") as f:
        f.write(data)
