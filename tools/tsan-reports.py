"""Sorts ThreadSanitizer's reports in a log, for tools/sanitize.

Only the shims are instrumented: TSan sees the accesses of Rust code, libtorch and
ExecuTorch only through its interceptors (malloc, free, memcpy) and none of their
atomics, so it reports races between accesses that were ordered by an atomic it could
not see. A report counts against the shims when an access's first frame outside the
interceptors is shim code; the others are listed as unattributable.

    python tools/tsan-reports.py <log>...   prints "<shim> <other>" and, on stderr, each report's
                                   kind and first frames
"""
import re
import sys

SHIMS = ("ptm_shim.cpp", "ptm_executorch.cpp")
INTERCEPTOR = re.compile(r"libsanitizer|libtsan\.so")
ACCESS = re.compile(r"^  (Read|Write|Atomic read|Atomic write|Previous read|Previous write|Previous atomic \w+) of size")


def reports(text):
    block = None
    for line in text.splitlines():
        if line.startswith("WARNING: ThreadSanitizer:"):
            block = [line]
        elif block is not None:
            block.append(line)
            if line.startswith("SUMMARY: ThreadSanitizer"):
                yield block
                block = None


def first_frames(block):
    """The first frame outside the interceptors of each access (races), or every frame."""
    frames, pending = [], None
    for line in block:
        if ACCESS.match(line):
            pending = True
        elif pending and re.match(r"^\s+#\d+ ", line) and not INTERCEPTOR.search(line):
            frames.append(line.strip())
            pending = None
    return frames


shim = other = 0
text = "\n".join(open(path, errors="replace").read() for path in sys.argv[1:])
for block in reports(text):
    kind = block[0].split(":", 2)[2].strip()
    if "data race" in kind:
        frames = first_frames(block)
    else:
        frames = [l.strip() for l in block if re.match(r"^\s+#\d+ ", l)]
    ours = any(s in f for f in frames for s in SHIMS)
    shim += ours
    other += not ours
    print(f"{'SHIM' if ours else 'other'}: {kind}: {' | '.join(f[:160] for f in frames[:2])}", file=sys.stderr)
print(shim, other)
