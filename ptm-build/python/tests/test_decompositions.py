"""run_decompositions calls with nothing to do skipped in ExecuTorch's lowering
(decompositions.py): in real torch and ExecuTorch, the same program bytes as ExecuTorch's
own steps give, with fewer traces; and torch's composite operators materialized again only
when one has registered. Needs torch and ExecuTorch (`.venv`, as tools/test runs it): each
lowering runs in a new process, so neither inherits the other's state."""
import pytest
import torch

from new_process import run
from ptm_convert import decompositions

# Lowers one model in a new process and prints its program's digest and how many times
# torch's run_decompositions traced the graph.
LOWER = r'''
import contextlib, hashlib, json, sys
import torch
from torch import nn
from torch.export import Dim, ExportedProgram
model_name, mode = sys.argv[1:3]
# The model's program and what decomposing it made: ExecuTorch's patterns are programs too.
lineage, traced = set(), 0
original = ExportedProgram.run_decompositions
def counted(self, *args, **kwargs):
    global traced
    result = original(self, *args, **kwargs)
    if id(self) in lineage:
        traced += 1
        lineage.add(id(result))
    return result
ExportedProgram.run_decompositions = counted

class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 5)
    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

torch.manual_seed(0)
if model_name == "encoder":
    from small_programs import dynamic_int8_encoder
    program = dynamic_int8_encoder()
else:
    sample, shapes = (torch.randn(1, 3, 12, 12),), ({2: Dim("height", min=4, max=32), 3: Dim("width", min=4, max=32)},)
    program = torch.export.export(Cnn().eval(), sample, dynamic_shapes=shapes, strict=False)
lineage.add(id(program))
from executorch.exir import to_edge_transform_and_lower
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
context = contextlib.nullcontext()
if mode == "skipping":
    from ptm_convert import decompositions
    context = decompositions.skipping_idle()
with context:
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
data = bytes(edge.to_executorch().buffer)
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "traced": traced}))
'''


# XNNPACK's partitioner checks each operator it keeps, so ExecuTorch (1.5.1) decomposes
# three times. The CNN's last call has nothing left to decompose; the dynamic INT8
# encoder's each time has (its layer norms and attention, its dynamic sizes).
@pytest.mark.parametrize("model,traced", [("cnn", 2), ("encoder", 3)])
def test_only_a_decomposition_with_nothing_to_do_is_skipped_and_the_program_is_the_same(model: str,
                                                                                          traced: int) -> None:
    plain, skipping = run(LOWER, model, "plain"), run(LOWER, model, "skipping")
    assert skipping["sha256"] == plain["sha256"]
    assert (plain["traced"], skipping["traced"]) == (3, traced)


def test_a_graph_that_mutates_an_argument_is_one_a_decomposition_would_change() -> None:
    def functional(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.add.Tensor(x, 1)

    def in_place(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.add_.Tensor(x, 1)
    assert not decompositions.mutates(torch.fx.symbolic_trace(functional))
    assert decompositions.mutates(torch.fx.symbolic_trace(in_place))


def test_outside_the_context_every_call_runs_again() -> None:
    from torch.export import ExportedProgram
    original = ExportedProgram.run_decompositions
    with decompositions.skipping_idle():
        assert ExportedProgram.run_decompositions is not original
    assert ExportedProgram.run_decompositions is original


def test_composite_operators_are_materialized_again_only_when_one_has_registered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._export import utils
    materialized: list[int] = []
    real = utils._materialize_cpp_cia_ops

    def counted() -> None:
        materialized.append(1)
        real()
    monkeypatch.setattr(utils, "_materialize_cpp_cia_ops", counted)
    expected = utils._collect_all_valid_cia_ops()
    assert len(materialized) > 1, "once per namespace, without the change"
    materialized.clear()
    with decompositions.materializing_on_change():
        assert utils._collect_all_valid_cia_ops() == expected
        assert utils._collect_all_valid_cia_ops() == expected
        assert len(materialized) == 1
        library = torch.library.Library("ptm_decompositions_test", "DEF")
        library.define("twice(Tensor x) -> Tensor")
        library.impl("twice", lambda x: x * 2, "CompositeImplicitAutograd")
        collected = utils._collect_all_valid_cia_ops()
        assert len(materialized) == 2
        assert torch.ops.ptm_decompositions_test.twice.default in collected
    assert utils._materialize_cpp_cia_ops is counted
