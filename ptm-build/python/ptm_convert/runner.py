"""The runner that verifies .pte files in ExecuTorch's native runtime (ptm_executorch_runner.cpp
over the same shim the `ptm` runtime links), kept in the cache like an entry:

    <runner_dir>/executorch-<version>-<shim digest>/
        ptm_executorch_runner          the binary
        ptm_executorch_runner.sha256   its sha256, written after it is in place
        lock                           held (flock) while it is compiled

It is checked before each use (a regular, executable file matching its recorded hash) and
compiled again when it is not, or when it cannot be started: a truncated, replaced or
emptied runner would otherwise fail every later .pte conversion with a message blaming
the model. Models converting at once, and builds sharing the cache, compile it once:
whoever holds the lock compiles, the others find it done."""
import fcntl
import hashlib
import os
import shutil
import subprocess

from .common import Failure, log

SHIM_FILES = ["ptm_executorch.h", "ptm_executorch.cpp", "ptm_executorch_runner.cpp"]
NAME = "ptm_executorch_runner"
# The dynamic loader's status when the binary starts but a library it links is missing.
LOADER_FAILED = 127


def shim_sources():
    """The runner's C++, in SHIM_FILES order: beside the package's modules, where ptm-build
    writes it, else in the checkout the package is installed from (the runner in
    ptm-build/executorch/, the shim it compiles in ptm-toolchain/executorch/)."""
    here = os.path.dirname(os.path.abspath(__file__))
    checkout = os.path.join(here, "..", "..", "..")
    places = (here, os.path.join(checkout, "ptm-build", "executorch"), os.path.join(checkout, "ptm-toolchain", "executorch"))
    sources = []
    for name in SHIM_FILES:
        found = [os.path.join(d, name) for d in places if os.path.isfile(os.path.join(d, name))]
        if not found:
            raise Failure("verify", f"the C++ of ExecuTorch's runner ({name}) is neither in {here} nor in a ptm checkout "
                                    "around it", "install ptm_convert from a checkout of ptm (pip install -e ptm-build/python)")
        sources.append(os.path.normpath(found[0]))
    return sources


class Runner:
    """The runner of this ExecuTorch and shim source, for model `model`'s messages."""

    def __init__(self, model, runner_dir):
        from executorch import version
        # A namespace package: its directory comes from a module in it.
        self.package = os.path.dirname(os.path.abspath(version.__file__))
        self.sources = shim_sources()
        digest = hashlib.sha256()
        for path in self.sources:
            with open(path, "rb") as f:
                digest.update(f.read())
        self.model = model
        self.directory = os.path.join(runner_dir, f"executorch-{version.__version__}-{digest.hexdigest()[:16]}")
        self.path = os.path.join(self.directory, NAME)
        self.record = self.path + ".sha256"

    def run(self, arguments):
        """Runs the runner on `arguments`; compiles it first when it is missing or
        damaged, and again (once) when it cannot be started."""
        self.ensure()
        done = self.start(arguments)
        if done is None:
            self.ensure(rebuild=True)
            done = self.start(arguments)
            if done is None:
                raise Failure("verify", f"ExecuTorch's runner {self.path} cannot be started even after compiling it "
                                        f"again: {self.why_not_started}",
                              f"delete {self.directory} and build again; check that the executorch package at "
                              f"{self.package} is complete (lib/ and include/)")
        return done

    def start(self, arguments):
        """The finished process, or None when the runner itself could not start."""
        try:
            done = subprocess.run([self.path, *arguments], capture_output=True, text=True)
        except OSError as e:
            self.why_not_started = f"{type(e).__name__}: {e}"
            return None
        if done.returncode == LOADER_FAILED:
            self.why_not_started = done.stderr.strip()[-500:] or f"status {LOADER_FAILED}"
            return None
        return done

    def problem(self):
        """Why the runner on disk cannot be used, or None."""
        if not os.path.isfile(self.path):
            return "is missing" if not os.path.lexists(self.path) else "is not a regular file"
        if not os.access(self.path, os.X_OK):
            return "is not executable"
        try:
            with open(self.record) as f:
                recorded = f.read().strip()
        except OSError:
            return "has no recorded hash"
        if sha256_of(self.path) != recorded:
            return "does not match its recorded hash"
        return None

    def ensure(self, rebuild=False):
        """A verified runner at self.path; with `rebuild`, a newly compiled one unless
        another process compiled it while this one waited for the lock."""
        if not rebuild and self.problem() is None:
            return
        os.makedirs(self.directory, exist_ok=True)
        seen = self.recorded()
        with open(os.path.join(self.directory, "lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            problem = self.problem()
            if problem is None and (not rebuild or self.recorded() != seen):
                return
            if problem is None:
                log(self.model, f"ExecuTorch's runner {self.path} could not be started; compiling it again")
            elif problem == "is missing":
                log(self.model, f"compiling ExecuTorch's runner (once per ExecuTorch version) into {self.directory}")
            else:
                log(self.model, f"ExecuTorch's runner {self.path} {problem}; compiling it again")
            self.compile()

    def recorded(self):
        try:
            with open(self.record) as f:
                return f.read().strip()
        except OSError:
            return None

    def compile(self):
        compiler = os.environ.get("CXX", "c++")
        include, lib = os.path.join(self.package, "include"), os.path.join(self.package, "lib")
        temporary = f"{self.path}.{os.getpid()}"
        command = [compiler, "-std=c++17", "-O2", "-w", "-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_EVENT_TRACER_ENABLED",
                   f"-I{os.path.dirname(self.sources[0])}",
                   f"-I{include}", f"-I{include}/executorch/runtime/core/portable_type/c10", *self.sources[1:],
                   # The shim loads the backend and kernel libraries itself, through the rpath.
                   "-o", temporary, f"-L{lib}", "-lexecutorch", "-lexecutorch_threadpool", f"-Wl,-rpath,{lib}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            raise Failure("verify", f"no C++ compiler `{compiler}` to build ExecuTorch's runner {self.path}, which "
                                    f"verifies the .pte", "install one (Debian: apt-get install g++) or set CXX")
        if done.returncode != 0:
            raise Failure("verify", f"compiling ExecuTorch's runner {self.path} failed:\n{done.stderr[-2000:]}",
                          f"check that the executorch package at {self.package} is complete (lib/ and include/)")
        digest = sha256_of(temporary)
        # Whatever stands in the way goes: a directory cannot be replaced by a file.
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            shutil.rmtree(self.path)
        os.replace(temporary, self.path)
        # Recorded last: a runner replaced but not yet recorded counts as damaged.
        with open(f"{self.record}.{os.getpid()}", "w") as f:
            f.write(digest + "\n")
        os.replace(f"{self.record}.{os.getpid()}", self.record)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
