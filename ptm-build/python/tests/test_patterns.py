"""ExecuTorch's pattern building skipped where no pattern can match (patterns.py): the record's
format, and, in real torch and ExecuTorch, the same program bytes as ExecuTorch's own steps
give, with the patterns built only where the graph could match them. Needs torch and
ExecuTorch (`.venv`, as tools/test runs it): each lowering runs in a new process, since
ExecuTorch keeps built patterns for the life of one."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from new_process import run
from ptm_convert import patterns

# Lowers one model in a new process and prints what it made and which patterns it built.
LOWER = r'''
import hashlib, json, sys
import torch
import torch.nn.functional as F
from torch import nn
model_name, mode, runner_dir = sys.argv[1:4]
built = {"upsample": 0, "attention": 0, "annotations": 0}
if mode == "guarded":
    from ptm_convert import patterns
    record = patterns.install(runner_dir)
    assert record is not None, "ExecuTorch's pattern steps are not where patterns.py expects them"
from executorch.backends.xnnpack.partition.graphs import bilinear_2d, sdpa
from executorch.backends.xnnpack.quantizer import xnnpack_quantizer_utils as utils
build = utils._get_aten_graph_module_for_pattern
def counted(*args, **kwargs):
    built["annotations"] += 1
    return build(*args, **kwargs)
utils._get_aten_graph_module_for_pattern = counted

class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 6 * 6, 3)
    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).flatten(1))

class ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)
    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))

class AttentionUpsample(nn.Module):
    def forward(self, x, q):
        mask = torch.zeros(q.shape[-2], q.shape[-2])
        attended = F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
        return F.interpolate(x, scale_factor=2, mode="bilinear"), attended

torch.manual_seed(0)
model = {"cnn": Cnn, "conv_bn": ConvBn, "attention_upsample": AttentionUpsample}[model_name]()
# Quantization-aware training keeps batch norms apart from their convolutions, where the
# quantizer's conv-bn patterns match (prepare_pt2e folds them first).
qat = model_name == "conv_bn"
model = model.train() if qat else model.eval()
sample = (torch.randn(2, 1, 8, 8),) if model_name != "attention_upsample" else (torch.randn(1, 3, 4, 4), torch.randn(1, 2, 8, 16))
program = torch.export.export(model, sample, strict=False)
if model_name != "attention_upsample":
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))
    prepared = (prepare_qat_pt2e if qat else prepare_pt2e)(program.module(), quantizer)
    prepared(*sample)
    converted = convert_pt2e(prepared)
    if qat:
        from torchao.quantization.pt2e import move_exported_model_to_eval
        converted = move_exported_model_to_eval(converted)
    program = torch.export.export(converted, sample, strict=False)
from executorch.exir import to_edge_transform_and_lower
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
data = bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
built["upsample"] = bilinear_2d._get_bilinear_2d_graphs.cache_info().misses
built["attention"] = sdpa.get_graphs.cache_info().misses
print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), **built}))
'''


def lower(model: str, mode: str, runner_dir: Path) -> dict[str, object]:
    return run(LOWER, model, mode, str(runner_dir))


def record_file(runner_dir: Path) -> Path:
    [found] = list(runner_dir.glob("executorch-patterns-*.json"))
    return found


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object], dict[str, object]]:
    """A runner directory whose record one guarded lowering wrote, that lowering's result,
    and the same model's lowering by ExecuTorch alone."""
    runner_dir = tmp_path_factory.mktemp("runners")
    return runner_dir, lower("cnn", "plain", runner_dir), lower("cnn", "guarded", runner_dir)


def test_no_pattern_is_built_where_none_can_match_and_the_program_is_the_same(
        learned: tuple[Path, dict[str, object], dict[str, object]]) -> None:
    runner_dir, plain, learning = learned
    # What ExecuTorch builds by itself: both lowering passes' patterns, and the four conv-bn
    # annotators' (three each, in ExecuTorch 1.5.1).
    assert {"upsample": 1, "attention": 1, "annotations": 12}.items() <= plain.items()
    assert learning == plain  # no record yet: built as ExecuTorch does, and recorded
    kinds = json.loads(record_file(runner_dir).read_text())["kinds"]
    assert set(kinds) == {"upsample_bilinear2d", "sdpa", "conv_bn", "conv_bn_relu", "conv_transpose_bn",
                          "conv_transpose_bn_relu"}
    assert ["aten.batch_norm.default", "aten.conv2d.default"] in kinds["conv_bn"]
    known = lower("cnn", "guarded", runner_dir)
    assert known == {"sha256": plain["sha256"], "upsample": 0, "attention": 0, "annotations": 0}


def test_patterns_that_can_match_are_built_and_applied_as_without_the_record(
        learned: tuple[Path, dict[str, object], dict[str, object]]) -> None:
    runner_dir = learned[0]
    expected = [("conv_bn", {"upsample": 0, "attention": 0, "annotations": 6}),
                ("attention_upsample", {"upsample": 1, "attention": 0, "annotations": 0})]
    for model, built in expected:
        plain, guarded = lower(model, "plain", runner_dir), lower(model, "guarded", runner_dir)
        assert guarded["sha256"] == plain["sha256"], model
        # Only the patterns whose operators the graph holds are built: the two conv-bn
        # annotators' (not the transposed convolutions'), and the upsampling's; no delegated
        # partition holds every operator of the attention pattern.
        assert {k: guarded[k] for k in built} == built, model


def test_a_damaged_record_is_read_as_none_and_written_again(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    for damage in [b"", b"{", b"[]", b'{"format": 2, "kinds": {"sdpa": [["a"]]}}', b"\xff\xfe"]:
        path.write_bytes(damage)
        record = patterns.Record(str(path))
        assert record.known("sdpa") is None, damage
        record.learn("sdpa", [SimpleNamespace(graph=SimpleNamespace(nodes=[
            SimpleNamespace(op="call_function", target="aten.bmm.default"), SimpleNamespace(op="placeholder", target="q")]))])
        assert patterns.Record(str(path)).known("sdpa") == [frozenset({"aten.bmm.default"})], damage


def test_the_record_reads_back_what_it_wrote() -> None:
    kinds = {"sdpa": [frozenset({"a", "b"}), frozenset({"a", "b"}), frozenset({"c"})], "upsample": [frozenset({"u"})]}
    assert patterns.parse(patterns.render(kinds)) == {"sdpa": [frozenset({"a", "b"}), frozenset({"c"})],
                                                      "upsample": [frozenset({"u"})]}
    partly = json.dumps({"format": 1, "kinds": {"sdpa": [["a"]], "bad": [["a", 3]], "empty": []}})
    assert patterns.parse(partly) == {"sdpa": [frozenset({"a"})]}


def test_a_pattern_may_match_only_a_graph_holding_all_its_operators() -> None:
    known = [frozenset({"conv", "batch_norm"}), frozenset({"conv", "batch_norm", "relu"})]
    assert not patterns.can_match(known, frozenset({"conv", "relu", "linear"}))
    assert patterns.can_match(known, frozenset({"conv", "batch_norm", "linear"}))
    assert not patterns.can_match([], frozenset({"conv"}))
