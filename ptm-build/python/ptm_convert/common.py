"""What every part of the worker shares: the failure type, progress lines, the seed."""
import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
import traceback
import types
import warnings
from typing import Any, Iterable, Iterator, Optional

SEED = 20240601

# Element types the runtime hands to Rust, by their code: ptm::DType, both C++ shims and
# the runner number them the same way (ptm-build/tests/dtype_tables.rs checks).
DTYPE_CODES = ["float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool", "float16"]


class Failure(Exception):
    """A conversion error with the stage it happened in and what the user can do."""

    def __init__(self, stage: str, message: str, hint: Optional[str] = None, tb: str = "") -> None:
        super().__init__(message)
        self.stage, self.message, self.hint, self.tb = stage, message, hint, tb


def identity(name: str, key: str, ptm_build: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
             extra: Iterable[tuple[str, str]] = ()) -> str:
    """What an artifact says of itself, read by the runtime when it loads: the model's
    name, its declaration's key, its signature and the ptm-build that wrote it, then any
    `extra` (field, value) pairs. One `field value` per line; the key makes the bytes no
    less reproducible."""
    def signature(specs: list[dict[str, Any]]) -> str:
        return "; ".join(f"{s['name']} {s['dtype']} [{', '.join(str(d if isinstance(d, int) else d['name']) for d in s['shape'])}]"
                         for s in specs)
    lines = [("model", name), ("key", key), ("ptm-build", ptm_build), ("inputs", signature(inputs)), ("outputs", signature(outputs)),
             *extra]
    return "ptm-identity 1\n" + "".join(f"{field} {value}\n" for field, value in lines)


PTE_TRAILER_MAGIC = b"PTMPTE01"


def with_pte_identity(program: bytes, text: str) -> bytes:
    """`program` with its identity record appended: the text, its length (u32 LE), a
    CRC-32 of everything before that checksum (u32 LE) and PTE_TRAILER_MAGIC. ExecuTorch
    reads only the program; the runtime checks the CRC before ExecuTorch sees a byte, since
    ExecuTorch's own verification leaves delegate payloads and operator arguments
    unchecked."""
    import struct
    import zlib
    body = program + text.encode("utf-8") + struct.pack("<I", len(text.encode("utf-8")))
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF) + PTE_TRAILER_MAGIC


def log(name: str, message: str) -> None:
    print(f"ptm: {name}: {message}", file=sys.stderr, flush=True)


def last_frames(limit: int = 6) -> str:
    return "".join(traceback.format_exc(limit=-limit)).strip()


def quiet_torch_warnings() -> None:
    # torch 2.11 announces deprecations of TorchScript, the lite interpreter and
    # torch.ao.quantization on every use; they say nothing about the user's model.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(migrat|torchao|TorchScript|lite interpreter|deprecated).*")
    # Every qnnpack dynamic Linear call warns that qnnpack ignores the module's
    # reduce_range (torch's default for fbgemm): the build verifies what qnnpack computes.
    warnings.filterwarnings("ignore", message=".*qnnpack incorrectly ignores reduce_range.*")


def describe(value: object) -> str:
    """A short description of what a model returned or a file held, for messages."""
    name = type(value).__name__
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:8])
        return f"a {name} (keys: {keys})"
    if isinstance(value, (tuple, list)):
        return f"a {name} of {len(value)}"
    return f"a {name}"


@contextlib.contextmanager
def native_stderr(lines: list[str]) -> Iterator[None]:
    """Collects what is written to file descriptor 2 inside the block into `lines`:
    torch's C++ warnings bypass Python's warnings module and land there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", errors="replace").splitlines())


def state_bytes(model: Any) -> int:
    """Bytes of the source model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values() if hasattr(t, "numel"))


def import_file(name: str, path: str) -> types.ModuleType:
    """The module in the Python file at `path`, imported as `name` (registered in
    sys.modules, as dataclasses and pickling need)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Python cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sample_key(sample: Any) -> str:
    """A sample's identity by content (element types, shapes, values): the same for a
    sample and its copies."""
    digest = hashlib.sha256()
    for t in sample:
        digest.update(str((t.dtype, tuple(t.shape))).encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a file of this process's own beside it, so that a
    reader, or another process writing the same file, never sees it half written."""
    temporary = f"{path}.{os.getpid()}"
    try:
        with open(temporary, "w") as f:
            f.write(text)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
