"""Short provenance records in a .pte conversion (provenance.py): the oldest source and the
node's own stay what torch records, and a real lowering gives the same program bytes with
records at most two deep. Needs torch and ExecuTorch (`.venv`, as tools/test runs it);
each case runs in a new process, since the change lasts for the life of one."""
from new_process import run

# Builds a record through a chain of nodes, with and without the change, and prints what
# ExecuTorch reads of it.
CHAIN = r'''
import json
from types import SimpleNamespace
from torch.fx.traceback import NodeSource
from executorch.exir.debug_handle_utils import get_greatest_ancestor_node_identifier
from ptm_convert import provenance

graph = object()

def chain():
    """A node made by six passes, each from the last; the third pass's node came from two."""
    node = SimpleNamespace(name="x0", target="aten.add", graph=graph, meta={})
    for i in range(1, 7):
        sources = [NodeSource(node, f"pass{i}")]
        if i == 3:
            other = SimpleNamespace(name="other", target="aten.mul", graph=graph, meta={})
            sources.insert(0, NodeSource(other, "other"))
        node = SimpleNamespace(name=f"x{i}", target="aten.add", graph=graph, meta={"from_node": sources})
    return node

def depth(sources):
    return 1 + max(depth(s.from_node) for s in sources) if sources else 0

def read(node):
    return {"ancestor": get_greatest_ancestor_node_identifier(node), "depth": depth(node.meta["from_node"]),
            "newest": [s.name for s in node.meta["from_node"]], "pass": node.meta["from_node"][-1].pass_name}

before = read(chain())
provenance.shorten_records()
provenance.shorten_records()  # a second call changes nothing more
print(json.dumps({"before": before, "after": read(chain())}))
'''

# Lowers a small transformer block with dynamic INT8, as a .pte conversion does, and prints
# its program's hash and the deepest record in the lowered graph.
LOWER = r'''
import hashlib, json, sys
import torch
from torch import nn
if sys.argv[1] == "shortened":
    from ptm_convert import provenance
    provenance.shorten_records()

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm, self.attend, self.out = nn.LayerNorm(16), nn.MultiheadAttention(16, 2, batch_first=True), nn.Linear(16, 4)
    def forward(self, x):
        y = self.norm(x)
        return self.out(self.attend(y, y, y, need_weights=False)[0] + x)

def depth(sources):
    return 1 + max(depth(s.from_node) for s in sources) if sources else 0

torch.manual_seed(0)
sample = (torch.randn(1, 6, 16),)
program = torch.export.export(Block().eval(), sample, strict=False)
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
prepared = prepare_pt2e(program.module(), quantizer)
prepared(*sample)
program = torch.export.export(convert_pt2e(prepared), sample, strict=False)
from executorch.exir import to_edge_transform_and_lower
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
deepest = 0
for module in edge.exported_program().graph_module.modules():
    if hasattr(module, "original_module"):
        for node in module.original_module.graph.nodes:
            deepest = max(deepest, depth(node.meta.get("from_node", [])))
data = bytes(edge.to_executorch().buffer)
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "deepest": deepest}))
'''



def test_the_oldest_source_and_the_nodes_own_stay_what_torch_records() -> None:
    result = run(CHAIN)
    before, after = result["before"], result["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert before["depth"] == 6 and after["depth"] == 2
    assert before["ancestor"] == after["ancestor"] and str(after["ancestor"]).startswith("x0.")
    assert before["newest"] == after["newest"] == ["x5"] and before["pass"] == after["pass"] == "pass6"


def test_a_lowering_gives_the_same_program_with_short_records() -> None:
    plain, shortened = run(LOWER, "plain"), run(LOWER, "shortened")
    assert shortened["sha256"] == plain["sha256"]
    assert isinstance(plain["deepest"], int) and isinstance(shortened["deepest"], int)
    assert plain["deepest"] > 2 and shortened["deepest"] <= 2, (plain, shortened)
