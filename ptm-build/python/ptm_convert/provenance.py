"""torch.fx records where each node came from in `node.meta["from_node"]`: a NodeSource per
source node, each holding a copy of its own source's record, so the record of a node that
went through n passes is n deep, and every pass that traces a graph again deep-copies it
for each node it makes (`NodeSource.__init__`). ExecuTorch's lowering runs its passes once
per delegated subgraph: the copies were a sixth of the review model's lowering
(BENCHMARKS.md).

What reads a record reads the node's sources (torch.export, by name: the NodeSource's own
fields) and, following the newest entry at each level, the oldest source: the "greatest
ancestor" from which ExecuTorch derives debug handles, and torchao its numeric debugger's.
The sources in between only help a human debug a pass. So in a process converting a .pte,
a NodeSource holds the oldest source of its node's newest entry alone, not a copy of the
node's whole record: the programs are the same, byte for byte (tested)."""
from typing import Any


def oldest(source: Any) -> Any:
    """The source a chain of records starts from, by the newest entry at each level, as
    ExecuTorch's get_greatest_ancestor_node_identifier walks it."""
    while source.from_node:
        source = source.from_node[-1]
    return source


def shorten_records() -> None:
    """Makes every NodeSource created in this process hold its node's oldest source alone
    (see the module) rather than a copy of the node's whole record."""
    from torch.fx import traceback
    cls = getattr(traceback, "NodeSource", None)
    if cls is None or getattr(cls.__init__, "ptm_shortened", False):
        return
    original = cls.__init__

    def init(self: Any, node: Any, *args: Any, **kwargs: Any) -> None:
        meta: Any = getattr(node, "meta", None)
        history = meta.get("from_node") if isinstance(meta, dict) else None
        if not isinstance(history, list) or not history or not isinstance(history[-1], cls):
            original(self, node, *args, **kwargs)
            return
        # Nothing for the original to copy; the oldest source is shared, as nothing
        # changes a NodeSource once made (torch's own passes edit nodes' lists only).
        meta["from_node"] = []
        try:
            original(self, node, *args, **kwargs)
        finally:
            meta["from_node"] = history
        self.from_node = [oldest(history[-1])]

    setattr(init, "ptm_shortened", True)
    cls.__init__ = init
