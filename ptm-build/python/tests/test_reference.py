"""The self-check's reference data: which samples it keeps, and its layout as the Rust
runtime reads it (ptm/src/self_check.rs)."""
import struct

import pytest
import torch

from ptm_convert import reference


def test_the_verified_samples_come_first_then_top1_ones_while_they_fit() -> None:
    checked = [(torch.zeros(4),) for _ in range(3)]
    extra = [(torch.ones(4),) for _ in range(5)]
    outputs = [(torch.zeros(2),) for _ in range(8)]
    samples, kept_outputs, counted = reference.chosen(checked, outputs[:3], extra, outputs[3:])
    assert (len(samples), counted) == (8, 3)
    assert len(kept_outputs) == 8

    # Each sample is 24 bytes; a budget of 60 keeps two.
    original = reference.BYTES
    reference.BYTES = 60
    try:
        samples, _, counted = reference.chosen(checked, outputs[:3], extra, outputs[3:])
    finally:
        reference.BYTES = original
    assert (len(samples), counted) == (2, 2)


def test_a_first_sample_larger_than_the_budget_is_still_kept() -> None:
    big = [(torch.zeros(1 << 19),)]  # 2 MiB
    samples, _, counted = reference.chosen(big, [(torch.zeros(1),)], [], [])
    assert (len(samples), counted) == (1, 1)


def test_the_layout_starts_with_the_key_tolerance_and_output_names_and_reads_back() -> None:
    written = reference.Reference("abc", 0.25, 0.9, True, ["logits"], [0.875], 1, [(torch.arange(3, dtype=torch.int64),)],
                                  [(torch.tensor([1.0, 2.0]),)])
    data = reference.encode(torch, written)
    assert data.startswith(reference.MAGIC)
    at = len(reference.MAGIC)
    (key_len,) = struct.unpack_from("<I", data, at)
    assert data[at + 4:at + 4 + key_len] == b"abc"
    at += 4 + key_len
    assert struct.unpack_from("<ddB", data, at) == (0.25, 0.9, 1)
    at += 17
    assert struct.unpack_from("<II", data, at) == (1, 6) and data[at + 8:at + 14] == b"logits"
    assert struct.unpack_from("<d", data, at + 14) == (0.875,)
    # Ends with the last output's float32 bytes.
    assert data.endswith(struct.pack("<2f", 1.0, 2.0))

    read = reference.decode(torch, data)
    assert (read.key, read.relative, read.top1, read.quantized, read.output_names, read.required_top1, read.counted) == (
        "abc", 0.25, 0.9, True, ["logits"], [0.875], 1)
    assert torch.equal(read.samples[0][0], torch.arange(3)) and torch.equal(read.outputs[0][0], torch.tensor([1.0, 2.0]))
    assert reference.encode(torch, read) == data
    with pytest.raises(ValueError):
        reference.decode(torch, data + b"\0")


def test_the_required_top1_is_what_the_runtime_reached_on_the_kept_rows_when_lower() -> None:
    from types import SimpleNamespace
    c = SimpleNamespace(torch=torch, output_names=["logits", "ids"], stage="verify",
                        decl={"tolerance": {"relative": 0.25, "top1": 0.9}, "quantize": "dynamic"})
    samples = [(torch.zeros(1),) for _ in range(4)]
    logits = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0]])]
    outputs = [(l, torch.tensor([i])) for i, l in enumerate(logits)]
    # The runtime flips the last row's class and gets one of four ids wrong.
    answers = iter([(logits[0], torch.tensor([0])), (logits[1], torch.tensor([1])), (logits[2], torch.tensor([2])),
                    (torch.tensor([[1.0, 0.0]]), torch.tensor([9]))])
    required = reference.required_top1(c, samples, outputs, 4, lambda sample: next(answers))  # type: ignore[arg-type]
    assert required == [0.75, 0.75]

    # A runtime that agrees everywhere leaves the declared tolerance.
    same = iter(outputs)
    required = reference.required_top1(c, samples, outputs, 4, lambda sample: next(same))  # type: ignore[arg-type]
    assert required == [0.9, 0.9]


def test_the_runtime_outputs_are_recalled_not_run_again() -> None:
    from ptm_convert.verify import Remembered
    calls = []

    def model(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.clone())
        x.add_(1)  # writes its input in place
        return x * 2

    ran = Remembered(model)
    first = ran(torch.zeros(2))
    assert len(calls) == 1 and torch.equal(first, torch.full((2,), 2.0))
    ran(torch.zeros(2))
    assert len(calls) == 2, "every call runs the model"
    assert ran.recalled(torch.zeros(2)) is first and len(calls) == 2, "keyed by the input as given, not as written"
    ran.recalled(torch.ones(2))
    assert len(calls) == 3, "an unseen sample runs"
