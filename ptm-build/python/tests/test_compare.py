"""The comparison maths on measured figures (compare.measure itself runs tensors, and is
tested through the conversions)."""
from typing import Any

from ptm_convert import compare
from ptm_convert.conversion import StageDrift

TOLERANCE = {"relative": 0.05, "top1": 0.9}


def total(**fields: Any) -> dict[str, Any]:
    figures = {"name": "out", "max_abs": 0.0, "source_max_abs": 0.0, "agree": 0, "rows": 0,
               "mismatched": 0, "elements": 0, "exact": False}
    figures.update(fields)
    return figures


def stage(*outputs: dict[str, Any]) -> StageDrift:
    return {"stage": "quantized", "samples": 2, "outputs": [compare.finish(t) for t in outputs]}


def test_a_float_output_gets_its_relative_error_and_top1() -> None:
    figures = compare.finish(total(max_abs=0.5, source_max_abs=10.0, agree=9, rows=10, elements=20))
    assert figures["relative"] == 0.05 and figures["top1"] == 0.9 and figures["mismatched"] is None


def test_an_output_that_is_all_zero_in_the_source_is_exact_or_infinitely_off() -> None:
    assert compare.finish(total())["relative"] == 0.0
    assert compare.finish(total(max_abs=1e-3))["relative"] == 1e300


def test_an_integer_output_counts_mismatched_elements() -> None:
    figures = compare.finish(total(exact=True, mismatched=3, elements=100, max_abs=2.0, source_max_abs=9.0))
    assert figures["mismatched"] == 3 and figures["relative"] is None


def test_problems_name_each_output_past_the_tolerance() -> None:
    good = total(name="good", max_abs=0.1, source_max_abs=10.0)
    bad = total(name="bad", max_abs=1.0, source_max_abs=10.0)
    found = compare.problems(stage(good, bad), TOLERANCE, quantized=True)
    assert [o["name"] for o, _ in found] == ["bad"]
    assert "relative error 0.1 (allowed 0.05)" in found[0][1]


def test_top1_below_the_tolerance_is_a_problem_within_the_relative_one() -> None:
    found = compare.problems(stage(total(max_abs=0.1, source_max_abs=10.0, agree=8, rows=10)), TOLERANCE, quantized=True)
    assert len(found) == 1 and "top-1 agreement 0.800 (required 0.900)" in found[0][1]


def test_integer_outputs_must_match_exactly_in_a_float_model_and_by_top1_in_int8() -> None:
    argmax = total(exact=True, mismatched=5, elements=100)
    assert "must match exactly" in compare.problems(stage(argmax), TOLERANCE, quantized=False)[0][1]
    assert compare.problems(stage(argmax), TOLERANCE, quantized=True) == []
    worse = total(exact=True, mismatched=20, elements=100)
    assert "agreement 0.800" in compare.problems(stage(worse), TOLERANCE, quantized=True)[0][1]


def test_a_source_output_without_signal_is_degenerate() -> None:
    flat, real = compare.finish(total(source_max_abs=1e-9)), compare.finish(total(source_max_abs=1.0))
    assert compare.degenerate(flat) and not compare.degenerate(real)
    assert not compare.degenerate(compare.finish(total(exact=True)))


def test_the_summary_has_a_line_per_output() -> None:
    lines = compare.summary(stage(total(name="a", max_abs=0.1, source_max_abs=1.0, agree=1, rows=1),
                                  total(name="b", exact=True, mismatched=1, elements=4)))
    assert lines == ["`a`: relative 0.1, max abs 0.1, source values up to 1, top-1 1.000 over 1 row (95% interval 0.207-1.000)",
                     "`b`: 1 of 4 elements differ"]


def test_the_top1_interval_says_how_little_eight_rows_tell() -> None:
    # One flipped row of 8: the agreement over every input could be as low as 0.53.
    low, high = compare.wilson_interval(7, 8)
    assert (round(low, 3), round(high, 3)) == (0.529, 0.978)
    # Of 200, the same share narrows to a few hundredths.
    low, high = compare.wilson_interval(175, 200)
    assert (round(low, 3), round(high, 3)) == (0.822, 0.914)
    assert compare.wilson_interval(200, 200)[1] == 1.0 and compare.wilson_interval(0, 5)[0] == 0.0
