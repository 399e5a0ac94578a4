"""The text docs/compatibility.md is written from, on rows made up here: no torch, no build.

    .venv/bin/python -m pytest tools/compat"""
import table

ENTRIES = [
    {"series": "2.11", "torch": "2.11.0", "executorch": "1.5.1", "cannot": {}},
    {"series": "2.12", "torch": "2.12.1", "executorch": "1.3.1", "cannot": {"pte": "ships no native runtime"}},
    {"series": "2.13", "torch": "2.13.0", "executorch": "1.4.1",
     "cannot": {"ptl": "built without XNNPACK", "pte": "ships no native runtime"}},
]


def row(fmt, **fields):
    base = {"architecture": "bert", "library": "transformers", "export": "trace", "quantize": "none", "format": fmt,
            "fp32_bytes": 1000, "bytes": 500, "drift": 1e-6, "top1": 1.0, "rust_vs_eager": 2e-7, "forward_ms": 0.25}
    return dict(base, **fields)


def test_delegated_share_counts_the_operators_the_delegate_runs():
    assert table.delegated_share(90, 10) == "90% (90 of 100)"
    assert table.delegated_share(0, 7) == "0% (0 of 7)"
    # A .ptl has no counts, and a program without operators has no share.
    assert table.delegated_share(None, None) == "-"
    assert table.delegated_share(0, 0) == "-"


def test_pte_rows_show_the_delegated_share_and_failures_their_stage():
    built = row("pte", delegated_operators=45, undelegated_operators=5)
    failed = row("pte", architecture="lstm", error="Error: ptm: model `model` failed at stage `export`:\n    torch.export could not keep `tokens` dynamic")
    lines = table.pte_table([built, failed])
    assert lines[2] == "| bert | transformers | none | yes | 0.00 MB (0.50x) | 1.00e-06, top-1 100% | 2.00e-07 | 0.25 ms | 90% (45 of 50) | - |"
    assert lines[3].startswith("| lstm | transformers | none | no: `export` torch.export could not keep `tokens` dynamic |")


def test_render_counts_each_format_and_labels_a_subset():
    rows = [row("ptl"), row("pte", delegated_operators=1, undelegated_operators=0), row("pte", error="failed at stage `verify`")]
    text = table.render(rows, 120, "2026-12-02", "x86_64, 2 cores", {"torch": "2.11.0"}, subset=["bert"])
    assert "**A subset run** (`tools/compat/run bert`)" in text
    assert "1 of 1 .ptl rows built; 1 of 2 .pte rows built, in 2 min." in text
    assert "## Lite Interpreter (.ptl)" in text and "## ExecuTorch (.pte)" in text
    assert '### bert, format = "pte", quantize = "none"' in text
    stopped = table.render(rows, 120, "2026-12-02", "x86_64, 2 cores", {"torch": "2.11.0"}, missing=["vit_none_pte"])
    assert "**An interrupted run**: it was stopped before building 1 of the 4 rows (`vit_none_pte`)" in stopped
    assert "interrupted" not in table.render(rows, 120, "2026-12-02", "x86_64, 2 cores", {"torch": "2.11.0"}, missing=[])


def test_toolchains_section_says_why_each_format_is_missing():
    measured = {"2.11": [row("ptl"), row("pte", architecture="lstm", error="failed at stage `export`:\n  torch.export failed")]}
    why = "its environment is not installed and the disk had 9.0 GiB free" + ", short of what it takes" * 8
    unmeasured = {"2.12": {"ptl": why}}
    text = table.toolchains_section(ENTRIES, measured, unmeasured, "2026-12-02", "x86_64, 2 cores", 300,
                                    {"2.15": "no ExecuTorch release pairs with it yet"})
    lines = text.splitlines()
    assert "| 2.11.0 | 1.5.1 | .ptl | bert | yes | 1.00e-06, top-1 100% | 0.25 ms |" in lines
    assert "| 2.11.0 | 1.5.1 | .pte | lstm | no: `export` torch.export failed | - | - |" in lines
    # Why a line has no figures is never cut short.
    assert f"| 2.12.1 | 1.3.1 | .ptl | - | not measured in this run: {why} | - | - |" in lines
    assert "| 2.12.1 | 1.3.1 | .pte | - | cannot: ships no native runtime | - | - |" in lines
    # One line per format a toolchain cannot make, and none made up for it.
    assert [l for l in lines if l.startswith("| 2.13.0")] == [
        "| 2.13.0 | 1.4.1 | .ptl | - | cannot: built without XNNPACK | - | - |",
        "| 2.13.0 | 1.4.1 | .pte | - | cannot: ships no native runtime | - | - |"]
    assert "Run: 2026-12-02, x86_64, 2 cores, in 5 min." in lines
    assert "torch 2.15 is not a validated toolchain: no ExecuTorch release pairs with it yet." in lines


def test_splice_replaces_the_toolchains_section_and_keeps_the_rest():
    doc = "# Compatibility\n\nintro\n\n## Rows that do not build\n\nfailures\n"
    first = table.splice(doc, "## Toolchains\n\nold\n")
    assert first == "# Compatibility\n\nintro\n\n## Toolchains\n\nold\n\n## Rows that do not build\n\nfailures\n"
    second = table.splice(first, "## Toolchains\n\nnew\n")
    assert second == first.replace("old", "new")
    assert table.section(second, table.TOOLCHAINS_HEADING) == "## Toolchains\n\nnew"
    assert table.splice("# Compatibility\n", "## Toolchains\n\nx\n") == "# Compatibility\n\n## Toolchains\n\nx\n"
