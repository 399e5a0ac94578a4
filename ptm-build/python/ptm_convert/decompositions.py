"""ExecuTorch's lowering (`to_edge_transform_and_lower`) decomposes a program with torch's
`ExportedProgram.run_decompositions` three times for a partitioner that checks each
operator it keeps, as XNNPACK's does: once to functionalize the graph, once to decompose
what the partitioner does not keep, and once more with the whole table after setting the
kept operators aside. Each call traces the whole graph again with fake tensors
(BENCHMARKS.md). A call on a graph that a previous call functionalized, whose table names
no operator the graph or a control-flow subgraph of it calls, and which mutates nothing,
has nothing to do, yet traces it all anew; ExecuTorch skips such a call itself on its
other path (`contains_any_call_fn_target_op`). Within `skipping_idle()`, it returns the
program as it is: the programs are the same, byte for byte (tested).

Each call also collects torch's composite operators anew, namespace by namespace, and for
each namespace first makes every composite operator registered in C++ an attribute of
`torch.ops`, again. That only ever adds what a new registration brings, so within
`skipping_idle()` it is done again only when the registrations have changed."""
import contextlib
import weakref
from typing import Any, Iterator, Optional


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
def materializing_on_change() -> Iterator[None]:
    """Within it, torch makes the C++ composite operators attributes of `torch.ops` only
    when their registrations differ from the last time it did (see the module)."""
    import torch
    from torch._export import utils
    original = getattr(utils, "_materialize_cpp_cia_ops", None)
    if original is None:
        yield
        return
    materialized_for: Optional[list[str]] = None

    def materialize() -> None:
        nonlocal materialized_for
        registered = torch._C._dispatch_get_registrations_for_dispatch_key("CompositeImplicitAutograd")
        if registered != materialized_for:
            original()
            materialized_for = registered

    setattr(utils, "_materialize_cpp_cia_ops", materialize)
    try:
        yield
    finally:
        setattr(utils, "_materialize_cpp_cia_ops", original)


@contextlib.contextmanager
def skipping_idle() -> Iterator[None]:
    """Within it, a run_decompositions call with nothing to do (see the module) returns
    its program unchanged, and each call materializes composite operators only if there
    are new ones. Where ExecuTorch's own test is not where this module expects it, every
    call runs."""
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
        with materializing_on_change():
            yield
    finally:
        setattr(ExportedProgram, "run_decompositions", original)
