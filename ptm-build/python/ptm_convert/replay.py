"""An ExecuTorch pass (an `ExportPass`) edits the graph and then replays all of it through
`ExportPass.call`: every node again, on fake tensors, to recompute each node's `val`, into
a new graph. XNNPACK's lowering runs each of its passes on each delegated subgraph, and
most passes find nothing to edit in most subgraphs, yet each replays its subgraph in full:
most of the lowering's replays are of a graph that the previous replay made and nothing
has touched since (BENCHMARKS.md).

A replay's result depends on the graph's nodes (operation, name, target, arguments),
the `val` of its nodes (its inputs' are what the replay starts from; a pass may have set
another's) and the attributes it reads; a pass that replays with hooks of its own
(`call_operator` and the like) does its work in the replay. So within `skipping_idle()`,
the replay of a pass without such hooks, given a graph that a replay made and that is
the same in all of those since, returns that graph as it is: the programs are the same,
byte for byte (tested)."""
import contextlib
import weakref
from typing import Any, Iterator


def describe(value: Any) -> Any:
    """What of a node's `val` a replay could change: a tensor's shape, strides and dtype
    (symbolic sizes by their expression), other values as they print, through lists."""
    if isinstance(value, (list, tuple)):
        return tuple(describe(v) for v in value)
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "stride") and hasattr(value, "dtype"):
        try:
            stride = tuple(str(s) for s in value.stride())
        except RuntimeError:  # a sparse or otherwise strideless tensor
            stride = ()
        return ("tensor", tuple(str(s) for s in shape), stride, str(value.dtype))
    return repr(value)


def fingerprint(graph_module: Any) -> Any:
    """Everything of a graph module that a replay reads, nested graph modules included."""
    parts: list[Any] = []
    for node in graph_module.graph.nodes:
        parts.append((node.op, node.name, repr(node.target), repr(node.args), repr(node.kwargs),
                      describe(node.meta.get("val"))))
        if node.op == "get_attr":
            attribute: Any = graph_module
            for name in str(node.target).split("."):
                attribute = getattr(attribute, name, None)
            parts.append(fingerprint(attribute) if hasattr(attribute, "graph") else (id(attribute), describe(attribute)))
    return tuple(parts)


def replays_plainly(cls: type, base: type) -> bool:
    """Whether a pass class replays with `base`'s own hooks, so that its replay only
    recomputes what the graph already says."""
    for klass in base.__mro__:
        for name, value in vars(klass).items():
            hook = callable(value) or isinstance(value, (staticmethod, classmethod, property))
            if not hook or name in ("call", "__init__") or (name.startswith("__") and name.endswith("__")):
                continue
            if getattr(cls, name, None) is not getattr(base, name, None):
                return False
    return True


@contextlib.contextmanager
def skipping_idle() -> Iterator[None]:
    """Within it, a replay with nothing to do (see the module) returns its graph as it
    is. Where ExecuTorch's passes are not what this module expects, every replay runs."""
    try:
        from executorch.exir.pass_base import ExportPass, PassResult, _ExportPassBase
    except ImportError:
        yield
        return
    original = _ExportPassBase.call
    # By graph: ExecuTorch hands each pass's result on in a new ExportedProgram, whose
    # GraphModule is new but holds the same Graph.
    made: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
    plain: dict[type, bool] = {}

    def call(self: Any, graph_module: Any) -> Any:
        cls = type(self)
        if cls not in plain:
            plain[cls] = replays_plainly(cls, ExportPass)
        graph = graph_module.graph
        if plain[cls] and graph in made and made[graph] == fingerprint(graph_module):
            return PassResult(graph_module, True)
        result = original(self, graph_module)
        made[result.graph_module.graph] = fingerprint(result.graph_module)
        return result

    setattr(_ExportPassBase, "call", call)
    try:
        yield
    finally:
        setattr(_ExportPassBase, "call", original)
