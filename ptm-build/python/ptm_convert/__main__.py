"""`python -m ptm_convert REQUEST.json [RESULT.json]`: converts the request's models as a
build would (one forked process per model, the same supervision) and writes the result,
to RESULT.json or else to stdout. worker.py documents both files; a request needs only
`models`, each with `decl` and `out` (README.md has an example)."""
import json
import os
import sys
import tempfile
from typing import Optional

from . import worker

USAGE = "usage: python -m ptm_convert REQUEST.json [RESULT.json]"


def main(argv: Optional[list[str]] = None) -> int:
    """Exit status: 0 when every model converted, 1 when one failed, 2 for a usage error."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    with tempfile.TemporaryDirectory(prefix="ptm-convert-") as scratch:
        result_path = args[1] if len(args) == 2 else os.path.join(scratch, "result.json")
        worker.main([args[0], result_path])
        result = worker.read_json(result_path)
        for index in range(len(result["models"]) if result else 0):
            # Each model's own copy, which ptm-build reads only when the worker died.
            for leftover in (f"{result_path}.{index}", f"{result_path}.{index}.stage"):
                if os.path.exists(leftover):
                    os.remove(leftover)
        if result is None:
            print(f"ptm_convert: no result was written to {result_path}", file=sys.stderr)
            return 1
        if len(args) == 1:
            json.dump(result, sys.stdout, indent=2)
            sys.stdout.write("\n")
    failed = [m for m in result["models"] if not m["ok"]]
    for m in failed:
        print(f"ptm_convert: `{m['name']}` failed at stage `{m['stage']}`: {m['message']}", file=sys.stderr)
        if m.get("hint"):
            print(f"  hint: {m['hint']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
