"""Process supervision: each model in a forked child, its result or its death, the
heartbeat and the timeout. The children run stand-ins for a conversion (no torch)."""
import faulthandler
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from ptm_convert import worker

Body = Callable[[Any, dict[str, Any], int, worker.Paths, int], None]


def request(tmp_path: Path, count: int, **fields: Any) -> dict[str, Any]:
    models = [{"decl": {"name": f"m{i}", "source": {"kind": "python", "file": "models/m.py", "callable": "build"}},
               "out": str(tmp_path / f"m{i}.ptl")} for i in range(count)]
    return {"crate_dir": str(tmp_path), "models": models, **fields}


def supervise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: Body, count: int = 1, jobs: int = 1,
              **fields: Any) -> list[dict[str, Any]]:
    monkeypatch.setattr(worker, "child", body)
    return worker.run_forked(None, request(tmp_path, count, **fields), str(tmp_path / "result.json"), jobs)


def converted(torch: Any, req: dict[str, Any], index: int, paths: worker.Paths, parent: int) -> None:
    paths.record_stage("export")
    worker.write_json(paths.result, {"name": req["models"][index]["decl"]["name"], "ok": True, "report": {"index": index}})


def test_each_model_gets_its_own_result_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    results = supervise(monkeypatch, tmp_path, converted, count=3, jobs=2)
    assert [r["name"] for r in results] == ["m0", "m1", "m2"]
    assert [r["report"]["index"] for r in results] == [0, 1, 2]
    assert json.loads((tmp_path / "result.json.1").read_text())["ok"] is True


def test_each_model_runs_in_a_process_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def body(torch: Any, req: dict[str, Any], index: int, paths: worker.Paths, parent: int) -> None:
        assert os.getppid() == parent
        worker.write_json(paths.result, {"name": f"m{index}", "ok": True, "report": {"pid": os.getpid()}})

    results = supervise(monkeypatch, tmp_path, body, count=2)
    pids = {r["report"]["pid"] for r in results}
    assert len(pids) == 2 and os.getpid() not in pids


def test_an_exit_without_a_result_is_that_models_failure_at_its_stage(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    def body(torch: Any, req: dict[str, Any], index: int, paths: worker.Paths, parent: int) -> None:
        if index == 0:
            paths.record_stage("quantize")
            os._exit(3)
        converted(torch, req, index, paths, parent)

    died, fine = supervise(monkeypatch, tmp_path, body, count=2)
    assert fine["ok"] is True
    assert died["ok"] is False and died["stage"] == "quantize"
    assert "`m0` exited with status 3 during stage `quantize`" in died["message"]
    assert "models/m.py:build" in died["hint"]


def test_a_crash_in_native_code_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def body(torch: Any, req: dict[str, Any], index: int, paths: worker.Paths, parent: int) -> None:
        faulthandler.disable()
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        paths.record_stage("verify")
        os.kill(os.getpid(), signal.SIGSEGV)

    (result,) = supervise(monkeypatch, tmp_path, body)
    assert result["stage"] == "verify"
    assert "was killed by SIGSEGV" in result["message"] and "crash in native code" in result["message"]


def test_an_exception_escaping_the_child_is_a_death_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def body(torch: Any, req: dict[str, Any], index: int, paths: worker.Paths, parent: int) -> None:
        raise RuntimeError("boom")

    (result,) = supervise(monkeypatch, tmp_path, body)
    assert result["ok"] is False and result["stage"] == "load"
    assert "exited with status 70" in result["message"]


def test_a_model_past_the_timeout_is_killed_and_says_where_it_was(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    def body(torch: Any, req: dict[str, Any], index: int, paths: worker.Paths, parent: int) -> None:
        paths.record_stage("export")
        time.sleep(30)

    started = time.monotonic()
    (result,) = supervise(monkeypatch, tmp_path, body, timeout_seconds=0.3)
    assert time.monotonic() - started < 10
    assert result["ok"] is False and result["stage"] == "export"
    assert "still in stage `export` after 0.3 s" in result["message"]
    assert worker.TIMEOUT_VARIABLE in result["hint"]


def test_a_model_long_in_one_stage_gets_a_heartbeat_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    def body(torch: Any, req: dict[str, Any], index: int, paths: worker.Paths, parent: int) -> None:
        paths.record_stage("quantize")
        time.sleep(0.5)
        converted(torch, req, index, paths, parent)

    (result,) = supervise(monkeypatch, tmp_path, body, heartbeat_seconds=0.15)
    assert result["ok"] is True
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith(worker.WARNING_PREFIX)]
    assert warnings, "no heartbeat warning"
    assert "model `m0` has been in stage `quantize`" in warnings[0]
    assert "set PTM_MODEL_TIMEOUT=<seconds>" in warnings[0]


def test_a_fork_that_keeps_failing_is_that_models_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    monkeypatch.setattr(worker, "FORK_BACKOFF", 0.001)
    (result,) = supervise(monkeypatch, tmp_path, converted)
    assert result["ok"] is False and result["stage"] == "start"
    assert f"os.fork failed {worker.FORK_ATTEMPTS} times" in result["message"]


def test_a_fork_that_fails_once_is_tried_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_fork, calls = os.fork, []

    def flaky_fork() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_fork()

    monkeypatch.setattr(os, "fork", flaky_fork)
    monkeypatch.setattr(worker, "FORK_BACKOFF", 0.001)
    (result,) = supervise(monkeypatch, tmp_path, converted)
    assert result["ok"] is True and len(calls) == 2


def test_a_request_written_by_hand_gets_the_crate_and_runner_defaults(tmp_path: Path) -> None:
    req = worker.with_defaults({"models": [{"decl": {}, "out": "a.pte"}]}, str(tmp_path / "request.json"))
    assert req["crate_dir"] == str(tmp_path)
    assert req["models"][0]["runner_dir"]
    kept = worker.with_defaults({"crate_dir": "/c", "models": [{"runner_dir": "/r"}]}, "/x/request.json")
    assert kept["crate_dir"] == "/c" and kept["models"][0]["runner_dir"] == "/r"


def test_the_collector_waits_for_the_imports_and_then_leaves_what_they_made_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    collecting_during_import: list[bool] = []
    real_import = worker.import_torch

    def import_torch() -> Any:
        collecting_during_import.append(gc.isenabled())
        return real_import()
    monkeypatch.setattr(worker, "import_torch", import_torch)
    try:
        torch = worker.import_for([{"decl": {"format": "ptl"}}])
        assert collecting_during_import == [False]
        assert gc.isenabled(), "conversions collect as usual"
        assert gc.get_freeze_count() > 0 and hasattr(torch, "jit")
    finally:
        gc.unfreeze()
        gc.enable()


def test_results_travel_in_files_written_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "r.json")
    assert worker.read_json(path) is None
    worker.write_json(path, {"models": [1]})
    assert worker.read_json(path) == {"models": [1]}
    assert os.listdir(tmp_path) == ["r.json"], "no temporary file is left beside it"
    (tmp_path / "bad.json").write_text("{")
    assert worker.read_json(str(tmp_path / "bad.json")) is None


def test_the_last_stage_defaults_to_load(tmp_path: Path) -> None:
    paths = worker.Paths(str(tmp_path / "result.json"), 4)
    assert paths.result.endswith("result.json.4")
    assert paths.last_stage() == "load"
    paths.record_stage("lower")
    assert paths.last_stage() == "lower"


def test_a_python_source_and_an_archive_are_named_as_declared() -> None:
    assert worker.source_of({"source": {"kind": "python", "file": "m.py", "callable": "f"}}) == "m.py:f"
    assert worker.source_of({"source": {"kind": "torchscript", "file": "m.pt"}}) == "m.pt"


def test_the_entry_point_refuses_a_wrong_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from ptm_convert.__main__ import main

    assert main([]) == 2
    assert "usage: python -m ptm_convert" in capsys.readouterr().err
    assert main(["--help"]) == 0
