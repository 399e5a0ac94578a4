"""Rewrites a saved .ptl so that each weight is stored once and the bytes are reproducible.

Why it is needed (see docs/TOOLCHAIN.md):
- After optimize_for_mobile freezes a module, packed-parameter objects (quantized
  embeddings, for example) become graph constants. The writer serializes them once for
  the TorchScript part (constants.pkl) and once for the bytecode (bytecode.pkl); each
  time the object unpacks into fresh tensors, so the writer's dedupe by storage pointer
  misses them and the same bytes land in two `constants/N.storage` records. Records
  with identical bytes and storage type are merged here by pointing every reference at
  the first.
- A saved archive differs on every save: `.data/serialization_id` is random, the root
  folder is named after the file, and `*.debug_pkl` source ranges hold absolute paths.
  The id is derived from the content and the root is always `model`. The debug
  records are dropped: they serve full-JIT error messages only (ptm saves without
  mobile debug info, so the Lite Interpreter never reads them), both interpreters load
  the archive without them, and they cost size and parse time.

The output keeps PyTorch's layout: entries stored uncompressed, in the original order,
each record's data 64-byte aligned (padding in an `FB` extra field, as PyTorch writes),
timestamps fixed.
"""
import hashlib
import io
import pickletools
import re
import struct
import zipfile
from typing import Any, Callable, Optional

ROOT = "model"
ALIGNMENT = 64
STORAGE_KEY = re.compile(r"^\d+\.storage$")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


IDENTITY = "extra/ptm_identity"
# [name under the root, body]: a list, since the serialization id is set in place.
Entry = list[Any]


def rewrite(data: bytes, identity: Optional[str] = None) -> bytes:
    """Returns the normalized, deduplicated archive for the .ptl bytes `data`; with
    `identity` (text), an `extra/ptm_identity` record the runtime reads when it loads
    the file (an extra file, in PyTorch's terms), replacing any there was."""
    source = zipfile.ZipFile(io.BytesIO(data))
    entries: list[Entry] = []
    for info in source.infolist():
        _, _, rest = info.filename.partition("/")
        if rest != IDENTITY:
            entries.append([rest, source.read(info)])
    if identity is not None:
        entries.append([IDENTITY, identity.encode("utf-8")])
    renames = duplicate_storages(entries)
    kept: list[Entry] = []
    for name, body in entries:
        if name.startswith("constants/") and name[len("constants/"):] in renames:
            continue
        if name in ("constants.pkl", "bytecode.pkl") and renames:
            body = rewrite_strings(body, lambda s: renames.get(s, s) if STORAGE_KEY.match(s) else s)
        elif name.endswith(".debug_pkl"):
            continue
        kept.append([name, body])
    content = hashlib.sha256()
    for name, body in kept:
        if name != ".data/serialization_id":
            content.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    serialization_id = str(int(content.hexdigest(), 16) % 10 ** 40).zfill(40).encode()
    for entry in kept:
        if entry[0] == ".data/serialization_id":
            entry[1] = serialization_id
    return write_aligned(kept)


def duplicate_storages(entries: list[Entry]) -> dict[str, str]:
    """Maps each `N.storage` key whose bytes and type repeat an earlier one to that one."""
    types: dict[str, str] = {}
    for name, body in entries:
        if name in ("constants.pkl", "bytecode.pkl"):
            types.update(storage_types(body))
    first: dict[tuple[str, bytes, int], str] = {}
    renames: dict[str, str] = {}
    for name, body in sorted(entries, key=lambda e: storage_order(e[0])):
        if not name.startswith("constants/"):
            continue
        key = name[len("constants/"):]
        if key not in types:
            continue
        identity = (types[key], hashlib.sha256(body).digest(), len(body))
        if identity in first:
            renames[key] = first[identity]
        else:
            first[identity] = key
    return renames


def storage_order(name: str) -> tuple[int, int]:
    match = re.match(r"^constants/(\d+)\.storage$", name)
    return (0, int(match.group(1))) if match else (1, 0)


def storage_types(pickle_bytes: bytes) -> dict[str, str]:
    """The storage class (e.g. `torch FloatStorage`) each storage key is loaded as."""
    memo: dict[Any, Any] = {}
    types: dict[str, Optional[str]] = {}
    last_global: Any = None
    previous: Optional[str] = None
    for op, arg, _ in pickletools.genops(pickle_bytes):
        if op.name in ("GLOBAL", "STACK_GLOBAL"):
            last_global = arg
        elif op.name in ("BINPUT", "LONG_BINPUT") and previous in ("GLOBAL",):
            memo[arg] = last_global
        elif op.name in ("BINGET", "LONG_BINGET"):
            last_global = memo.get(arg)
        elif op.name in ("BINUNICODE", "SHORT_BINUNICODE") and isinstance(arg, str) and STORAGE_KEY.match(arg) and last_global:
            if types.get(arg, last_global) != last_global:
                types[arg] = None  # loaded as two types: leave it alone
            else:
                types[arg] = last_global
        if op.name not in ("BINPUT", "LONG_BINPUT"):
            previous = op.name
    return {k: v for k, v in types.items() if v}


def rewrite_strings(pickle_bytes: bytes, change: Callable[[str], str]) -> bytes:
    """Re-emits a protocol-2 pickle with every unicode string passed through `change`.

    Protocol 2 (what TorchScript writes) has no frames and no offsets, so ops can be
    copied one by one and only string ops re-encoded.
    """
    ops = list(pickletools.genops(pickle_bytes))
    out = bytearray()
    for index, (op, arg, position) in enumerate(ops):
        end = ops[index + 1][2] if index + 1 < len(ops) else len(pickle_bytes)
        if op.name in ("BINUNICODE", "SHORT_BINUNICODE") and isinstance(arg, str):
            changed = change(arg)
            if changed != arg:
                encoded = changed.encode("utf-8")
                out += b"X" + struct.pack("<I", len(encoded)) + encoded
                continue
        out += pickle_bytes[position:end]
    return bytes(out)


def write_aligned(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, body in entries:
            info = zipfile.ZipInfo(f"{ROOT}/{name}", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 0
            info.external_attr = 0
            header_end = buffer.tell() + 30 + len(info.filename.encode("utf-8"))
            padding = (-header_end) % ALIGNMENT
            if padding:
                if padding < 4:
                    padding += ALIGNMENT
                info.extra = b"FB" + struct.pack("<H", padding - 4) + b"Z" * (padding - 4)
            archive.writestr(info, body)
    result = buffer.getvalue()
    check_alignment(result)
    return result


def check_alignment(data: bytes) -> None:
    archive = zipfile.ZipFile(io.BytesIO(data))
    for info in archive.infolist():
        name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len
        if start % ALIGNMENT:
            raise AssertionError(f"record {info.filename} starts at {start}, not {ALIGNMENT}-byte aligned")
