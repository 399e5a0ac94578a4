"""ExecuTorch finds some subgraphs by matching patterns that it builds, once per process or
on every call, by exporting small modules: XNNPACK's lowering rewrites bilinear upsampling
and attention, and its INT8 quantizer annotates convolutions followed by a training-mode
batch norm. Building them takes seconds of every .pte conversion (BENCHMARKS.md). torch.fx's
subgraph matchers pair every operator a pattern calls with a node of the graph calling the
same one, so a graph that lacks an operator of each pattern matches none of them. Once the
operators of each kind of pattern are known, a step given such a graph runs without
building its patterns and does exactly what it would have done with them.

The operators are recorded the first time the patterns are built, per torch, ExecuTorch
and the files that build them, beside ExecuTorch's runner:

    <runner_dir>/executorch-patterns-<digest>.json   {"format": 1, "kinds": {kind: [[operator, ...], ...]}}

Without a record of a kind (the first .pte build on a machine, or a damaged file) its step
builds the patterns as ExecuTorch does, and the record is written. Nothing changes when
ExecuTorch's steps are not where this module expects them."""
import contextlib
import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from .common import write_atomic

FORMAT = 1
XNNPACK = "executorch.backends.xnnpack"
QUANTIZER_UTILS = f"{XNNPACK}.quantizer.xnnpack_quantizer_utils"
# Where the quantizer's annotators build their patterns, and match them: names in its module.
BUILD_PATTERN = "_get_aten_graph_module_for_pattern"
MATCHER = "SubgraphMatcherWithNameNodeMap"

Operators = frozenset[str]


@dataclass(frozen=True)
class Pass:
    """A lowering pass (`cls` in module `module`) that matches the graph modules a function
    (`getter` in module `graphs`) builds once per process and returns, as a list or as the
    keys of a dict; `none` is that function's result with no patterns."""
    kind: str
    module: str
    cls: str
    graphs: str
    getter: str
    none: Callable[[], Any]


PASSES = [
    Pass("upsample_bilinear2d", f"{XNNPACK}._passes.convert_to_upsample_bilinear2d", "ConvertToUpsampleBilinear2d",
         f"{XNNPACK}.partition.graphs.bilinear_2d", "get_graphs_dict", dict),
    Pass("sdpa", f"{XNNPACK}._passes.convert_to_sdpa", "ConvertToSDPAPass",
         f"{XNNPACK}.partition.graphs.sdpa", "get_graphs", list),
]
# The quantizer's annotators (its OP_TO_ANNOTATOR) that build a pattern per call.
ANNOTATORS = ["conv_bn", "conv_bn_relu", "conv_transpose_bn", "conv_transpose_bn_relu"]
# What else decides the patterns' operators, besides torch's and ExecuTorch's versions.
PATTERN_FILES = [*(p.graphs for p in PASSES), QUANTIZER_UTILS, f"{XNNPACK}.utils.configs"]


def operators(graph: Any) -> Operators:
    """The operators a torch.fx graph calls, by name."""
    return frozenset(str(node.target) for node in graph.nodes if node.op == "call_function")


def can_match(known: list[Operators], present: Operators) -> bool:
    """Whether any pattern, by the operators it calls, may match a graph calling `present`."""
    return any(pattern <= present for pattern in known)


def parse(text: str) -> dict[str, list[Operators]]:
    """A record's kinds; nothing of what does not have the record's shape."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("kinds"), dict):
        return {}
    kinds: dict[str, list[Operators]] = {}
    for kind, patterns in data["kinds"].items():
        if (isinstance(patterns, list) and patterns
                and all(isinstance(p, list) and p and all(isinstance(o, str) for o in p) for p in patterns)):
            kinds[kind] = [frozenset(p) for p in patterns]
    return kinds


def render(kinds: dict[str, list[Operators]]) -> str:
    return json.dumps({"format": FORMAT, "kinds": {kind: sorted({tuple(sorted(p)) for p in patterns})
                                                   for kind, patterns in sorted(kinds.items())}}, indent=1) + "\n"


class Record:
    """The operators of each kind's patterns, read from and written to `path`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.kinds = self.read()

    def read(self) -> dict[str, list[Operators]]:
        try:
            with open(self.path) as f:
                return parse(f.read())
        except (OSError, UnicodeDecodeError):
            return {}

    def known(self, kind: str) -> Optional[list[Operators]]:
        return self.kinds.get(kind)

    def learn(self, kind: str, patterns: list[Any]) -> None:
        """Records the operators of `patterns` (graph modules); a record that cannot be
        written only means the next process builds them again."""
        if not patterns:
            return
        self.kinds = {**self.read(), kind: [operators(p.graph) for p in patterns]}
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_atomic(self.path, render(self.kinds))


@contextlib.contextmanager
def replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


def guard_pass(spec: Pass, record: Record, call: Callable[..., Any]) -> Callable[..., Any]:
    """The pass's `call`: without building the patterns when the graph cannot match them,
    recording their operators when they are built."""
    graphs = importlib.import_module(spec.graphs)

    def run(self: Any, graph_module: Any) -> Any:
        known = record.known(spec.kind)
        if known is not None and not can_match(known, operators(graph_module.graph)):
            with replaced(graphs, spec.getter, spec.none):
                return call(self, graph_module)
        result = call(self, graph_module)
        if known is None:
            record.learn(spec.kind, list(getattr(graphs, spec.getter)()))
        return result

    return run


class NoMatches:
    """A matcher that finds nothing, in place of one given patterns that cannot match."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def match(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def guard_annotator(kind: str, record: Record, annotate: Callable[..., Any]) -> Callable[..., Any]:
    """The annotator: without building its patterns when the graph cannot match them (a
    trivial graph module stands in for each, and a matcher that finds nothing), recording
    their operators when they are built."""
    utils = importlib.import_module(QUANTIZER_UTILS)

    def run(gm: Any, *args: Any, **kwargs: Any) -> Any:
        known = record.known(kind)
        if known is not None and not can_match(known, operators(gm.graph)):
            import torch
            stand_in = torch.fx.symbolic_trace(torch.nn.Identity())
            with replaced(utils, BUILD_PATTERN, lambda *_a, **_k: stand_in), replaced(utils, MATCHER, NoMatches):
                return annotate(gm, *args, **kwargs)
        built: list[Any] = []
        build = getattr(utils, BUILD_PATTERN)

        def building(*a: Any, **k: Any) -> Any:
            built.append(build(*a, **k))
            return built[-1]

        with replaced(utils, BUILD_PATTERN, building):
            result = annotate(gm, *args, **kwargs)
        if known is None:
            record.learn(kind, built)
        return result

    return run


def record_path(runner_dir: str) -> Optional[str]:
    """The record of this torch and ExecuTorch, or None when the files that build the
    patterns are not where this module expects them."""
    import torch
    from executorch import version
    digest = hashlib.sha256(f"{FORMAT} {torch.__version__} {version.__version__}".encode())
    for module in PATTERN_FILES:
        try:
            path = importlib.import_module(module).__file__
            with open(path or "", "rb") as f:
                digest.update(f.read())
        except Exception:  # as in install: not found, nothing changed
            return None
    return os.path.join(runner_dir, f"executorch-patterns-{digest.hexdigest()[:16]}.json")


def install(runner_dir: str) -> Optional[Record]:
    """Guards each step that builds patterns, in this process; the record, or None when
    ExecuTorch's steps are not the ones this module knows (nothing is changed then)."""
    path = record_path(runner_dir)
    if path is None:
        return None
    try:
        classes = [getattr(importlib.import_module(p.module), p.cls) for p in PASSES]
        getters = [getattr(importlib.import_module(p.graphs), p.getter) for p in PASSES]
        utils = importlib.import_module(QUANTIZER_UTILS)
        annotators = [utils.OP_TO_ANNOTATOR[kind] for kind in ANNOTATORS]
        if not all(callable(f) for f in [*getters, *annotators, getattr(utils, BUILD_PATTERN), getattr(utils, MATCHER)]):
            return None
    except Exception:  # any failure to find them leaves ExecuTorch as it is
        return None
    record = Record(path)
    for spec, cls in zip(PASSES, classes):
        if not getattr(cls.call, "ptm_guarded", False):
            guarded = guard_pass(spec, record, cls.call)
            setattr(guarded, "ptm_guarded", True)
            cls.call = guarded
    for kind, annotate in zip(ANNOTATORS, annotators):
        if not getattr(annotate, "ptm_guarded", False):
            guarded = guard_annotator(kind, record, annotate)
            setattr(guarded, "ptm_guarded", True)
            utils.OP_TO_ANNOTATOR[kind] = guarded
    return record


def prepare(record: Optional[Record]) -> None:
    """Builds the lowering passes' patterns not yet recorded, and records them: before
    forking, so that every program's process starts with them. (The quantizer builds its
    patterns on every call, so nothing built here would help its processes.)"""
    for spec in PASSES:
        if record is None or record.known(spec.kind) is None:
            built = list(getattr(importlib.import_module(spec.graphs), spec.getter)())
            if record is not None:
                record.learn(spec.kind, built)
