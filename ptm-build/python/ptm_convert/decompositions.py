"""ExecuTorch's lowering (`to_edge_transform_and_lower`) decomposes a program with torch's
`ExportedProgram.run_decompositions` three times for a partitioner that checks each
operator it keeps, as XNNPACK's does: once to functionalize the graph, once to decompose
what the partitioner does not keep, and once more with the whole table after setting the
kept operators aside. Each call traces the whole graph again with fake tensors
(BENCHMARKS.md). A call on a graph that a previous call functionalized, whose table names
no operator the graph or a control-flow subgraph of it calls, and which mutates nothing,
has nothing to do, yet traces it all anew; ExecuTorch skips such a call itself on its
other path (`contains_any_call_fn_target_op`). Within `skipping_idle()`, it returns the
program as it is: the programs are the same, byte for byte (tested)."""
import contextlib
import weakref
from typing import Any, Iterator


def mutates(graph_module: Any) -> bool:
    """Whether any operator the graph or a subgraph of it calls mutates one of its
    arguments: a call that functionalizes would rewrite it."""
    for module in graph_module.modules():
        for node in module.graph.nodes if hasattr(module, "graph") else ():
            schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
            if schema is not None and schema.is_mutable:
                return True
    return False


@contextlib.contextmanager
def skipping_idle() -> Iterator[None]:
    """Within it, a run_decompositions call with nothing to do (see the module) returns
    its program unchanged. Where ExecuTorch's own test is not where this module expects
    it, every call runs."""
    from torch.export import ExportedProgram
    try:
        from executorch.exir.graph_module import contains_any_call_fn_target_op
    except ImportError:
        yield
        return
    original = ExportedProgram.run_decompositions
    functional: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def run_decompositions(self: Any, decomp_table: Any = None, *args: Any, **kwargs: Any) -> Any:
        if (decomp_table and self in functional and not mutates(self.graph_module)
                and not contains_any_call_fn_target_op(self.graph_module, decomp_table)):
            return self
        result = original(self, decomp_table, *args, **kwargs)
        functional.add(result)
        return result

    setattr(ExportedProgram, "run_decompositions", run_decompositions)
    try:
        yield
    finally:
        setattr(ExportedProgram, "run_decompositions", original)
