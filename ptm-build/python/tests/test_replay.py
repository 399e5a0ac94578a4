"""Replays with nothing to do skipped in ExecuTorch's lowering (replay.py): in real torch and
ExecuTorch, the same program bytes as ExecuTorch's own passes give, with fewer replays,
on graphs that XNNPACK's passes edit (batch norms to fuse, a 1-d convolution, bilinear
upsampling, a concatenation, PReLU, activations to fuse) and on a dynamic INT8 encoder.
Needs torch and ExecuTorch (`.venv`, as tools/test runs it); each lowering runs in a new
process."""
import pytest
import torch

from new_process import run
from ptm_convert import replay

# Lowers one model in a new process and prints its program's digest and how many times
# ExecuTorch's passes replayed a graph.
LOWER = r'''
import contextlib, hashlib, json, sys
import torch
import torch.nn.functional as F
from torch import nn
from executorch.exir.pass_base import _ExportPassBase
model_name, mode = sys.argv[1:3]
replayed = 0
original = _ExportPassBase.call
def counted(self, graph_module):
    global replayed
    replayed += 1
    return original(self, graph_module)
_ExportPassBase.call = counted

class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.prelu = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.PReLU(4)
        self.side, self.fc = nn.Conv2d(3, 4, 1), nn.Linear(8, 5)
    def forward(self, x):
        main = self.prelu(self.bn(self.conv(x)))
        side = F.interpolate(self.side(F.avg_pool2d(x, 2)), scale_factor=2.0, mode="bilinear")
        joined = F.hardtanh(torch.cat([main, side], dim=1))
        return self.fc(joined.mean(dim=(2, 3)))

class Signal(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv1d(2, 6, 5), nn.Linear(6, 3)
    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).amax(dim=2))

torch.manual_seed(0)
if model_name == "cnn":
    model, sample = Cnn().eval(), (torch.randn(1, 3, 16, 16),)
    model.bn.running_mean.uniform_(-1, 1); model.bn.running_var.uniform_(0.5, 2)
    program = torch.export.export(model, sample, strict=False)
elif model_name == "signal":
    program = torch.export.export(Signal().eval(), (torch.randn(1, 2, 40),), strict=False)
else:
    from small_programs import dynamic_int8_encoder
    program = dynamic_int8_encoder()
from executorch.exir import to_edge_transform_and_lower
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
context = contextlib.nullcontext()
if mode == "skipping":
    from ptm_convert import replay
    context = replay.skipping_idle()
with context:
    data = bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "replayed": replayed}))
'''


@pytest.mark.parametrize("model", ["cnn", "signal", "encoder"])
def test_a_replay_with_nothing_to_do_is_skipped_and_the_program_is_the_same(model: str) -> None:
    plain, skipping = run(LOWER, model, "plain"), run(LOWER, model, "skipping")
    assert skipping["sha256"] == plain["sha256"]
    replayed, fewer = plain["replayed"], skipping["replayed"]
    assert isinstance(replayed, int) and isinstance(fewer, int)
    # Most of XNNPACK's passes find nothing to edit in a delegated subgraph; the
    # replays that remain are the edits, and ExecuTorch's patterns being built.
    assert fewer < replayed, (replayed, fewer)


def fake_graph(shape: tuple[int, ...], scale: float) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = torch.empty(shape)
    graph.output(graph.call_function(torch.ops.aten.mul.Tensor, (x, scale)))
    return torch.fx.GraphModule(torch.nn.Module(), graph)


def test_a_fingerprint_changes_with_the_nodes_and_the_values_a_replay_starts_from() -> None:
    same = replay.fingerprint(fake_graph((2, 3), 2.0))
    assert replay.fingerprint(fake_graph((2, 3), 2.0)) == same
    assert replay.fingerprint(fake_graph((2, 3), 3.0)) != same, "an argument"
    assert replay.fingerprint(fake_graph((3, 3), 2.0)) != same, "an input's shape"
    root = torch.nn.Module()
    root.weight = torch.nn.Parameter(torch.ones(4))
    graph = torch.fx.Graph()
    graph.output(graph.call_function(torch.ops.aten.mul.Tensor, (graph.placeholder("x"), graph.get_attr("weight"))))
    reads = torch.fx.GraphModule(root, graph)
    before = replay.fingerprint(reads)
    assert replay.fingerprint(reads) == before
    reads.weight = torch.nn.Parameter(torch.ones(5))
    assert replay.fingerprint(reads) != before, "an attribute it reads"


def test_only_a_pass_that_replays_with_the_base_hooks_replays_plainly() -> None:
    from executorch.exir.pass_base import ExportPass

    # Subclasses as a pass module defines them.
    edits_then_replays = type("EditsThenReplays", (ExportPass,), {"call": lambda self, gm: ExportPass.call(self, gm)})
    replaces_operators = type("ReplacesOperators", (ExportPass,), {
        "call_operator": lambda self, op, args, kwargs, meta: ExportPass.call_operator(self, op, args, kwargs, meta)})
    traces_its_own_way = type("TracesItsOwnWay", (ExportPass,), {
        "ExportTracer": type("ExportTracer", (ExportPass.ExportTracer,), {})})

    assert replay.replays_plainly(edits_then_replays, ExportPass)
    assert not replay.replays_plainly(replaces_operators, ExportPass)
    assert not replay.replays_plainly(traces_its_own_way, ExportPass)
