import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from ptm_convert import common, conversion, report

INPUTS = [{"name": "tokens", "dtype": "int64", "shape": [1, {"name": "seq", "example": 16}]}]
OUTPUTS = [{"name": "logits", "dtype": "float32", "shape": [1, 2]}]


def test_identity_is_one_field_per_line_with_the_signature() -> None:
    text = common.identity("review", "abc123", "0.1.0", INPUTS, OUTPUTS, [("executorch", "1.5.1")])
    assert text == ("ptm-identity 1\nmodel review\nkey abc123\nptm-build 0.1.0\ninputs tokens int64 [1, seq]\n"
                    "outputs logits float32 [1, 2]\nexecutorch 1.5.1\n")


def test_the_pte_trailer_is_text_length_crc_and_magic() -> None:
    program, text = b"\x00program bytes", "ptm-identity 1\nmodel m\n"
    data = common.with_pte_identity(program, text)
    assert data.startswith(program) and data.endswith(common.PTE_TRAILER_MAGIC)
    length, crc = struct.unpack("<II", data[-16:-8])
    assert length == len(text.encode())
    assert data[-16 - length:-16].decode() == text
    assert crc == zlib.crc32(data[:-12]) & 0xFFFFFFFF
    damaged = b"\x01" + data[1:]
    assert struct.unpack("<I", damaged[-12:-8])[0] != zlib.crc32(damaged[:-12]) & 0xFFFFFFFF


def test_describe_names_what_a_value_holds() -> None:
    assert common.describe({"a": 1, "b": 2}) == "a dict (keys: a, b)"
    assert common.describe((1, 2, 3)) == "a tuple of 3"
    assert common.describe(1.5) == "a float"


def test_a_failure_keeps_its_stage_hint_and_traceback() -> None:
    failure = common.Failure("export", "it broke", "do this", "tb")
    assert (failure.stage, failure.message, failure.hint, failure.tb, str(failure)) == ("export", "it broke", "do this", "tb", "it broke")


def test_native_stderr_collects_what_c_code_writes_to_fd_2() -> None:
    lines: list[str] = []
    with common.native_stderr(lines):
        os.write(2, b"from C++\nsecond line\n")
    assert lines == ["from C++", "second line"]


class FakeTorch:
    __version__ = "2.11.0"


def finished_conversion(tmp_path: Path) -> conversion.Conversion:
    stages: list[str] = []
    job = conversion.Job.from_json({"decl": {"name": "m", "inputs": INPUTS}, "out": str(tmp_path / "m.pte")})
    c = conversion.Conversion(FakeTorch(), job, str(tmp_path), str(tmp_path), stages.append)
    for stage in ("export", "quantize", "verify", "done"):
        c.stage = stage
    assert stages == ["load", "export", "quantize", "verify", "done"]
    return c


def test_every_stage_is_timed_once_in_order(tmp_path: Path) -> None:
    c = finished_conversion(tmp_path)
    assert [t["stage"] for t in c.timings] == ["load", "export", "quantize", "verify"]
    assert all(t["seconds"] >= 0 for t in c.timings)


def converted_fields() -> list[str]:
    """The fields of ptm_report::Converted, which reads the report."""
    source = (Path(__file__).parents[3] / "ptm-report" / "src" / "lib.rs").read_text()
    body = source.split("pub struct Converted {", 1)[1].split("\n}", 1)[0]
    return re.findall(r"^\s*pub (\w+):", body, re.M)


def test_the_report_has_exactly_the_fields_ptm_build_reads(tmp_path: Path) -> None:
    c = finished_conversion(tmp_path)
    built: dict[str, Any] = dict(report.build(c, OUTPUTS, ["aten::linear"]))
    assert sorted(built) == sorted(converted_fields())
    assert built["inputs"] == [{"name": "tokens", "dtype": "int64", "shape": [1, {"name": "seq", "example": 16}]}]
    assert built["bytecode_version"] == 0 and built["torch"] == "2.11.0"
    assert [t["stage"] for t in built["stage_seconds"]] == ["load", "export", "quantize", "verify"]


def test_the_job_takes_what_ptm_build_sends() -> None:
    job = conversion.Job.from_json({"decl": {"name": "m"}, "out": "o", "calibration_files": ["c/1.pt"], "key": "k",
                                    "ptm_build": "0.1.0", "runner_dir": "/r"})
    assert (job.calibration_files, job.key, job.ptm_build, job.runner_dir) == (["c/1.pt"], "k", "0.1.0", "/r")
    assert conversion.Job.from_json({"decl": {}, "out": "o"}).runner_dir is None


def test_the_pure_modules_import_without_torch() -> None:
    code = ("import sys; import ptm_convert.worker, ptm_convert.archive, ptm_convert.compare, ptm_convert.report, "
            "ptm_convert.pipeline, ptm_convert.pte, ptm_convert.__main__; assert 'torch' not in sys.modules")
    parent = str(Path(__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=parent), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
