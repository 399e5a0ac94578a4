"""ptm's torch worker: converts the models of one build request to Lite Interpreter files
(.ptl) or ExecuTorch programs (.pte).

ptm-build starts it once per build for every model that missed the cache:

    python -B -u ptm_worker.py REQUEST.json RESULT.json    (ptm_worker.py: the launcher beside the package)

REQUEST.json: {"crate_dir": str, "jobs": int, "heartbeat_seconds": float, "timeout_seconds": float | null,
               "models": [{"decl": <ptm_build::ModelDecl as JSON>, "out": str, "calibration_files": [str],
                           "runner_dir": str}]}
RESULT.json:  {"torch": str, "models": [{"name", "ok": true, "report": {...}}
                                       | {"name", "ok": false, "stage", "message", "hint", "traceback"}]}

This process imports torch once, then converts each model in a child forked from it
before any TorchScript work: TorchScript's name mangling counter and type caches are
process-wide, so a model converted after another would get other bytes. A child starts
from the same state whatever ran before, so a model's bytes depend on its declaration
and files alone; and a child that dies (sys.exit, os._exit, a crash in native code) is
reported as that model's failure, at the stage it reached. Up to `jobs` children run at
once. Where fork does not exist, each model runs in a fresh interpreter instead.

Each child leaves its result in RESULT.json.<index> as soon as it is verified, so that
ptm-build can cache the models that finished even when this process dies. A fork that
fails (EAGAIN under load) is tried again after the next child ends or a short pause,
and then reported as that model's failure. A model in one stage for longer than
`heartbeat_seconds` gets a warning line (WARNING_PREFIX, which ptm-build shows as a
cargo warning); one running longer than `timeout_seconds` is killed.

Progress goes to stderr, one line per step. Model code may print freely: ptm-build
connects this process's stdout to its own stderr, and results travel only in files.
"""
import faulthandler
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional

from .common import SEED, Failure, last_frames, log, quiet_torch_warnings, write_atomic
from .conversion import Conversion, Job, Torch

# One model's record in RESULT.json: {"name", "ok": true, "report"} or {"name", "ok": false,
# "stage", "message", "hint", "traceback"}.
ModelResult = dict[str, Any]
# REQUEST.json as read.
Request = dict[str, Any]

# Signals that mean the process crashed in native code rather than being stopped.
CRASHES = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"}
# Lines ptm-build shows as cargo warnings (pipeline.rs reads the same prefix).
WARNING_PREFIX = "ptm-warning: "
# How often a model's fork is tried before it is reported as failed, and the first pause.
FORK_ATTEMPTS = 4
FORK_BACKOFF = 0.5
# How often the supervisor looks at its children while none has ended.
POLL_SECONDS = 0.05
TIMEOUT_VARIABLE = "PTM_MODEL_TIMEOUT"
# What a fresh interpreter runs where fork does not exist: this module, found beside the package.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPAWNED = "import sys; from ptm_convert.worker import main; main(sys.argv[1:])"


def convert(torch: Torch, job: dict[str, Any], crate_dir: str, scratch: str,
            on_stage: Callable[[str], None] = lambda stage: None) -> ModelResult:
    """One model's result record; never raises. `scratch` takes the files the conversion
    generates (adapters)."""
    from . import pipeline, pte  # imported by the parent already, before forking

    name = job["decl"]["name"]
    started = time.perf_counter()
    conversion = Conversion(torch, Job.from_json(job), crate_dir, scratch, on_stage)
    run = pte.run if job["decl"].get("format") == "pte" else pipeline.run
    try:
        report = run(conversion)
    except Failure as f:
        return {"name": name, "ok": False, "stage": f.stage, "message": f.message, "hint": f.hint, "traceback": f.tb}
    except SystemExit as e:
        return {"name": name, "ok": False, "stage": conversion.stage,
                "message": f"the model's code called sys.exit({e.code!r}) during stage `{conversion.stage}`",
                "hint": "a model's code must not exit the process: raise an exception instead, and keep script code "
                        "under `if __name__ == \"__main__\":`", "traceback": last_frames()}
    except Exception as e:
        return {"name": name, "ok": False, "stage": conversion.stage, "message": f"{type(e).__name__}: {e}",
                "hint": None, "traceback": last_frames()}
    report["seconds"] = round(time.perf_counter() - started, 3)
    log(name, f"converted in {report['seconds']:.1f} s, {report['sizes'][-1]['bytes'] / 1e6:.2f} MB")
    return {"name": name, "ok": True, "report": report}


def write_json(path: str, value: Any) -> None:
    write_atomic(path, json.dumps(value))


def read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Paths:
    """Where the child converting model `index` leaves its result and its last stage."""

    def __init__(self, result_path: str, index: int) -> None:
        self.result = f"{result_path}.{index}"
        self.stage = f"{result_path}.{index}.stage"

    def record_stage(self, stage: str) -> None:
        with open(self.stage, "w") as f:
            f.write(stage)

    def last_stage(self) -> str:
        try:
            with open(self.stage) as f:
                return f.read().strip() or "load"
        except OSError:
            return "load"


def die_with_parent(parent: int) -> None:
    """On Linux, a child outlives a killed worker unless asked not to: a cancelled build
    must not leave conversions running."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def child(torch: Torch, request: Request, index: int, paths: Paths, parent: int) -> None:
    """The body of one model's process: convert, leave the result, and exit."""
    die_with_parent(parent)
    faulthandler.enable()  # a crash in native code prints the Python stack first
    torch.manual_seed(SEED)
    job = request["models"][index]
    # The files the conversion generates go beside the result, and are removed with it done.
    with tempfile.TemporaryDirectory(prefix="ptm-", dir=os.path.dirname(os.path.abspath(paths.result))) as scratch:
        result = convert(torch, job, request["crate_dir"], scratch, paths.record_stage)
    write_json(paths.result, result)


def source_of(decl: dict[str, Any]) -> str:
    source = decl["source"]
    return f"{source['file']}:{source['callable']}" if source["kind"] == "python" else source["file"]


def died(job: dict[str, Any], paths: Paths, how: str, why: str) -> ModelResult:
    decl = job["decl"]
    name, stage = decl["name"], paths.last_stage()
    return {"name": name, "ok": False, "stage": stage,
            "message": f"the process converting `{name}` {how} during stage `{stage}`, without a result: {why}",
            "hint": f"run the model from {source_of(decl)} in Python outside ptm on inputs of the declared shapes "
                    f"(`python -X faulthandler`), find what ends the process, and make it raise an exception instead",
            "traceback": ""}


def timed_out(job: dict[str, Any], paths: Paths, timeout: float) -> ModelResult:
    decl = job["decl"]
    name, stage = decl["name"], paths.last_stage()
    return {"name": name, "ok": False, "stage": stage,
            "message": f"the process converting `{name}` was still in stage `{stage}` after {timeout:g} s, the limit "
                       f"{TIMEOUT_VARIABLE}={timeout:g} sets, and was killed",
            "hint": f"run the model from {source_of(decl)} in Python outside ptm and find what keeps it in stage "
                    f"`{stage}` (a sleep, a download, a lock, a loop in forward that never ends); or raise "
                    f"{TIMEOUT_VARIABLE}, or unset it for no limit, if the model needs longer",
            "traceback": ""}


def not_started(job: dict[str, Any], error: OSError, attempts: int) -> ModelResult:
    name = job["decl"]["name"]
    return {"name": name, "ok": False, "stage": "start",
            "message": f"could not start the process that converts `{name}`: os.fork failed {attempts} times: {error}",
            "hint": "the machine ran out of processes or memory for the moment: build again with fewer jobs at once "
                    "(cargo build -j 1) or with a higher process limit (ulimit -u); the models converted before it "
                    "are cached",
            "traceback": ""}


def verdict(job: dict[str, Any], paths: Paths, signame: Optional[str], code: int) -> ModelResult:
    """The child's result, or why there is none: it was killed by `signame` or exited with `code`."""
    result = read_json(paths.result)
    if result is not None:
        return result
    if signame:
        if signame in CRASHES:
            why = ("a crash in native code (torch, or a C extension the model's code calls); the Python stack "
                   "faulthandler printed is above")
        elif signame == "SIGKILL":
            why = "it was killed from outside, often by the out-of-memory killer"
        else:
            why = "it was stopped by a signal"
        return died(job, paths, f"was killed by {signame}", why)
    return died(job, paths, f"exited with status {code}",
                "the model's code, or a library it calls, ended the process (os._exit, or exit() in C)")


class Child:
    """One running conversion as the supervisor watches it: how long it has run, and how
    long it has been in its current stage."""

    def __init__(self, index: int, paths: Paths) -> None:
        self.index, self.paths = index, paths
        self.started = self.stage_since = time.monotonic()
        self.stage: Optional[str] = None
        self.beats, self.killed = 0, False

    def watch(self, pid: int, name: str, heartbeat: float, timeout: Optional[float]) -> None:
        now = time.monotonic()
        stage = self.paths.last_stage()
        if stage != self.stage:
            self.stage, self.stage_since, self.beats = stage, now, 0
        if now - self.stage_since >= heartbeat * (self.beats + 1):
            self.beats += 1
            limit = (f"it is killed after {timeout:g} s ({TIMEOUT_VARIABLE})" if timeout
                     else f"set {TIMEOUT_VARIABLE}=<seconds> to stop a model that is stuck")
            print(f"{WARNING_PREFIX}model `{name}` has been in stage `{stage}` for {int(now - self.stage_since)} s "
                  f"and is still running; {limit}", file=sys.stderr, flush=True)
        if timeout and not self.killed and now - self.started >= timeout:
            self.killed = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start(torch: Torch, request: Request, index: int, paths: Paths, parent: int) -> int:
    """Forks the child converting model `index` and returns its pid; raises OSError when
    fork fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child(torch, request, index, paths, parent)
        except BaseException:
            code = 70
        finally:
            # Never return into the parent's loop, and skip its exit handlers.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def run_forked(torch: Torch, request: Request, result_path: str, jobs: int) -> list[ModelResult]:
    models = request["models"]
    heartbeat = float(request.get("heartbeat_seconds") or 60)
    timeout = request.get("timeout_seconds")
    results: list[ModelResult] = [{} for _ in models]
    waiting = list(range(len(models)))
    failed_forks: dict[int, int] = {}
    running: dict[int, Child] = {}
    parent = os.getpid()
    while waiting or running:
        while waiting and len(running) < jobs:
            index = waiting[0]
            paths = Paths(result_path, index)
            try:
                pid = start(torch, request, index, paths, parent)
            except OSError as e:
                name = models[index]["decl"]["name"]
                attempts = failed_forks[index] = failed_forks.get(index, 0) + 1
                if attempts >= FORK_ATTEMPTS:
                    waiting.pop(0)
                    results[index] = not_started(models[index], e, attempts)
                    log(name, f"could not start its process after {attempts} attempts: {e}")
                    continue
                log(name, f"could not start its process ({e}); trying again")
                if running:
                    break  # a child that ends gives back what fork lacked
                time.sleep(FORK_BACKOFF * 2 ** (attempts - 1))
                continue
            waiting.pop(0)
            running[pid] = Child(index, paths)
        if not running:
            continue
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for watched, state in running.items():
                state.watch(watched, models[state.index]["decl"]["name"], heartbeat, timeout)
            time.sleep(POLL_SECONDS)
            continue
        if pid in running:
            state = running.pop(pid)
            index, paths = state.index, state.paths
            signame = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None
            if state.killed and read_json(paths.result) is None:
                results[index] = timed_out(models[index], paths, float(timeout or 0))
            else:
                results[index] = verdict(models[index], paths, signame, os.waitstatus_to_exitcode(status))
    return results


def run_spawned(request_path: str, request: Request, result_path: str) -> list[ModelResult]:
    """Without fork: one fresh interpreter per model, one at a time."""
    results = []
    for index, job in enumerate(request["models"]):
        paths = Paths(result_path, index)
        done = subprocess.run([sys.executable, "-B", "-u", "-c", SPAWNED, request_path, result_path, "--only", str(index)],
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))))
        code = done.returncode
        results.append(verdict(job, paths, signal.Signals(-code).name if code < 0 else None, code))
    return results


def import_for(models: list[dict[str, Any]]) -> Torch:
    """Imports what the models' formats need, and keeps it out of the collector's way.

    Importing torch and ExecuTorch makes millions of objects that live until the
    process ends, and the cyclic collector would traverse them all again on each of its
    full collections, both while they import and during every conversion after
    (BENCHMARKS.md has what that costs a .pte conversion). So it waits for the imports,
    and what they made is then frozen out of its reach, which is also the gc module's
    advice for a parent that forks: a child collecting does not copy the parent's pages."""
    gc.disable()
    try:
        torch = import_torch()
        programs = [m for m in models if m["decl"].get("format") == "pte"]
        if programs:
            import_executorch(programs)
    finally:
        gc.freeze()
        gc.enable()
    return torch


def import_torch() -> Torch:
    quiet_torch_warnings()
    import torch
    import torch.jit.mobile  # not imported by `import torch`
    quiet_torch_warnings()
    # One thread: qnnpack's kernels on a small x86 host run 30x slower with the default
    # intra-op pool than without it (contention), and conversion is not parallel work.
    torch.set_num_threads(1)
    from . import pipeline  # noqa: F401  (once here, not in every forked child)
    return torch


def import_executorch(programs: list[dict[str, Any]]) -> None:
    # Before forking, like torch: each child would otherwise pay its import (seconds).
    from . import patterns, pte  # noqa: F401
    import executorch.exir  # noqa: F401
    record = patterns.install(programs[0]["runner_dir"])
    if len(programs) > 1:
        # Patterns not yet recorded are built here, once, rather than in every
        # program's child. With one program the child pays the same, so the parent
        # does not wait for it.
        patterns.prepare(record)


def with_defaults(request: Request, request_path: str) -> Request:
    """The request with what ptm-build always sets filled in, for one written by hand: the
    crate is the request's directory, and .pte runners are kept in the temporary directory."""
    request.setdefault("crate_dir", os.path.dirname(os.path.abspath(request_path)))
    for job in request["models"]:
        job.setdefault("runner_dir", os.path.join(tempfile.gettempdir(), "ptm-runners"))
    return request


def main(argv: list[str]) -> None:
    request_path, result_path = argv[0], argv[1]
    with open(request_path) as f:
        request = with_defaults(json.load(f), request_path)
    only = int(argv[3]) if argv[2:3] == ["--only"] else None
    torch = import_for(request["models"] if only is None else [request["models"][only]])
    if only is not None:
        child(torch, request, only, Paths(result_path, only), os.getppid())
        return
    jobs = max(1, min(int(request.get("jobs", 1)), len(request["models"])))
    if hasattr(os, "fork"):
        results = run_forked(torch, request, result_path, jobs)
    else:
        results = run_spawned(request_path, request, result_path)
    write_json(result_path, {"torch": torch.__version__, "models": results})

