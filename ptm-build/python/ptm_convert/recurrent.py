"""nn.LSTM and nn.GRU as scan loops, so that torch.export keeps their length dynamic.

torch.export (torch 2.11 to 2.14) runs an nn.LSTM or nn.GRU as a Python loop over its
time steps and so fixes the sequence length to the example's (pytorch/pytorch#115092).
`torch._higher_order_ops.scan` is one operator over all the steps whatever their
number: ExecuTorch's runtime runs it as a loop. `scan_loops` replaces the recurrent
layers whose length follows a declared dynamic dimension by modules that compute the
same thing (in eval mode: dropout between layers is off) with a scan, holding the same
parameters under the same names, so state dicts and `quantize_skip` names still match.

The input projection of every step (x W_ih^T + b_ih) is one Linear over the whole
sequence, outside the loop, where XNNPACK and PT2E quantization can take it; each step's
recurrent part (h W_hh^T + b_hh and the gates) runs inside the loop, on ExecuTorch's
own kernels.

Imports torch: pte.py imports it once a conversion runs."""
import copy
from typing import Any, Optional

import torch
from torch import nn
from torch.nn import functional as F
from torch._higher_order_ops.scan import scan

from . import inputs
from .common import Failure, log
from .conversion import Conversion, Module, Tensor

# What nn.LSTM and nn.GRU are configured by; a scan module keeps the same attributes.
CONFIG = ("mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
          "proj_size")


class ScanRecurrent(nn.Module):  # type: ignore[misc]  # torch is untyped here (conversion.py)
    """An nn.LSTM or nn.GRU (eval mode) whose steps run in one `scan`: the same inputs,
    outputs, attributes and parameters."""

    def __init__(self, rnn: Any) -> None:
        super().__init__()
        for name in CONFIG:
            setattr(self, name, getattr(rnn, name))
        # The same Parameter objects, under the names nn.RNNBase gives them
        # (weight_ih_l0, bias_hh_l1_reverse, weight_hr_l0, ...).
        for name, parameter in rnn.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        self.train(rnn.training)

    def flatten_parameters(self) -> None:
        """What nn.RNNBase does for cuDNN; models call it in forward, and here there is
        nothing to flatten."""

    def extra_repr(self) -> str:
        return (f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, bidirectional={self.bidirectional}, scan")

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        lstm = self.mode == "LSTM"
        batched = input.dim() == 3
        # Time-major [steps, batch, features] from here on.
        if not batched:
            x = input.unsqueeze(1)
        elif self.batch_first:
            x = input.transpose(0, 1)
        else:
            x = input
        directions = 2 if self.bidirectional else 1
        layers = self.num_layers * directions
        out_size = self.proj_size if lstm and self.proj_size > 0 else self.hidden_size
        batch = x.shape[1]
        if hx is None:
            # One zero state for every layer (scan does not write to its inputs): no
            # per-layer copies for ExecuTorch to make outside the delegate.
            h0 = [x.new_zeros(batch, out_size)] * layers
            c0 = [x.new_zeros(batch, self.hidden_size)] * layers
        elif lstm:
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        else:
            h0 = hx if batched else hx.unsqueeze(1)
        last_h: list[Tensor] = []
        last_c: list[Tensor] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                carry = (h0[index], c0[index]) if lstm else (h0[index],)
                (h, *c), steps = self.run(x, suffix, carry, reverse=direction == 1)
                outputs.append(steps)
                last_h.append(h)
                last_c.extend(c)
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
        h_n = torch.stack(last_h)
        output = x
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
        elif self.batch_first:
            output = output.transpose(0, 1)
        if not lstm:
            return output, h_n
        c_n = torch.stack(last_c)
        return output, (h_n, c_n if batched else c_n.squeeze(1))

    def run(self, x: Tensor, suffix: str, carry: tuple[Tensor, ...], reverse: bool) -> tuple[tuple[Tensor, ...], Tensor]:
        """One layer in one direction over time-major `x`: the last (h,) or (h, c) and
        every step's h."""
        w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
        b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
        # Every step's input projection at once: a Linear over the sequence.
        projected = F.linear(x, w_ih, b_ih)
        # Transposed once here rather than at every step (F.linear would).
        w_hh_t = w_hh.t()

        def recurrent(h: Tensor) -> Tensor:
            return torch.addmm(b_hh, h, w_hh_t) if b_hh is not None else torch.mm(h, w_hh_t)
        if self.mode == "LSTM":
            w_hr_t = getattr(self, "weight_hr" + suffix).t() if self.proj_size > 0 else None

            def lstm_step(state: tuple[Tensor, Tensor], gates_x: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor]:
                h, c = state
                i, f, g, o = (gates_x + recurrent(h)).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                if w_hr_t is not None:
                    h = torch.mm(h, w_hr_t)
                # scan's outputs may not alias its carry.
                return (h, c), h.clone()

            return scan(lstm_step, carry, projected, reverse=reverse)

        def gru_step(state: tuple[Tensor], gates_x: Tensor) -> tuple[tuple[Tensor], Tensor]:
            (h,) = state
            r_x, z_x, n_x = gates_x.chunk(3, dim=-1)
            r_h, z_h, n_h = recurrent(h).chunk(3, dim=-1)
            r = torch.sigmoid(r_x + r_h)
            z = torch.sigmoid(z_x + z_h)
            n = torch.tanh(n_x + r * n_h)
            h = (1 - z) * n + z * h
            return (h,), h.clone()

        return scan(gru_step, carry, projected, reverse=reverse)


def outside_loops(node: Any) -> bool:
    """For a PT2E quantizer: False for an operator inside a scan loop's body (the only
    operators whose nn_module_stack is empty). ExecuTorch runs a loop's body outside
    XNNPACK, where an INT8 activation would be quantized and dequantized at every step on
    kernels that are not linked (to_executorch fails: "Missing out variants"); the loop
    stays float, its input projection (outside the loop) is quantized. A parameter
    (get_attr) or an input never carries the stack: the annotators consult the filter on
    a convolution's weight too, which must stay quantizable."""
    return node.op != "call_function" or bool(node.meta.get("nn_module_stack"))


def recurrent_layers(model: Module) -> dict[str, Any]:
    """{name: module} of the model's nn.LSTM and nn.GRU, as nn.LSTM and nn.GRU define
    them (a subclass with its own forward computes something else)."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (nn.LSTM, nn.GRU)) and type(m).forward in (nn.LSTM.forward, nn.GRU.forward)}


def scan_loops(c: Conversion, model: Module) -> Module:
    """`model`, or a copy of it whose recurrent layers that see a varying length run as
    scan loops (see the module's doc). Logs and warns naming them."""
    layers = recurrent_layers(model)
    if not layers:
        return model
    varying = varying_lengths(c, model, layers)
    if not varying:
        return model
    for name in varying:
        refuse_unsupported(c, name, layers[name])
    model = copy.deepcopy(model)
    if varying == [""]:
        model = ScanRecurrent(model)  # the model is the layer
    for name in varying:
        if name:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            setattr(parent, child, ScanRecurrent(getattr(parent, child)))
    shown = [f"nn.{layers[name].mode} `{name.removeprefix(c.inner_prefix) or c.name}`" for name in varying]
    many = len(shown) > 1
    log(c.name, f"running {', '.join(shown)} as {'scan loops' if many else 'a scan loop'} over "
                f"{'their' if many else 'its'} steps (torch.export would fix the length)")
    c.warnings.append(f"{' and '.join([', '.join(shown[:-1]), shown[-1]]) if many else shown[0]} "
                      f"run{'' if many else 's'} as {'scan loops' if many else 'a scan loop'} over {'their' if many else 'its'} steps so that "
                      f"{'their lengths stay' if many else 'its length stays'} dynamic: the input projection is a "
                      "Linear over the whole sequence, but the recurrent cell runs outside the XNNPACK delegate, on "
                      "ExecuTorch's portable kernels, one step at a time (declared with a fixed length, it unrolls "
                      "into delegated steps instead)")
    return model


def refuse_unsupported(c: Conversion, name: str, rnn: Any) -> None:
    """A Failure for a layer the scan module would not reproduce."""
    shown = f"nn.{rnn.mode} `{name.removeprefix(c.inner_prefix)}`"
    if any("parametrizations" in p for p, _ in rnn.named_parameters()) or rnn._forward_hooks or rnn._forward_pre_hooks:
        raise Failure("export", f"{shown} has parametrizations or hooks, which ptm cannot carry into the scan loop that "
                      "keeps its length dynamic for torch.export",
                      "remove them before returning the model (torch.nn.utils.parametrize.remove_parametrizations), "
                      "declare the length fixed, or ship the model as format = \"ptl\"")


def varying_lengths(c: Conversion, model: Module, layers: dict[str, Any]) -> list[str]:
    """The names of the layers in `layers` whose sequence length changes when the
    declared dynamic dimensions do: the model runs at its example sizes and at other
    sizes in their ranges. When it fails at the other sizes, every layer."""
    moved = inputs.alternate_sizes(c)
    if not moved:
        return []
    lengths: dict[str, list[Optional[int]]] = {name: [] for name in layers}

    def recorder(name: str) -> Any:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = args[0] if args else kwargs.get("input")
            if not isinstance(x, torch.Tensor):
                lengths[name].append(None)  # a PackedSequence: left as it is
            else:
                lengths[name].append(x.shape[1 if x.dim() == 3 and module.batch_first else 0])
        return hook

    handles = [m.register_forward_pre_hook(recorder(name), with_kwargs=True) for name, m in layers.items()]
    try:
        with torch.no_grad():
            model(*inputs.sample_at(c, {n: example for n, (example, _) in moved.items()}, 0))
            seen = {name: len(found) for name, found in lengths.items()}
            try:
                model(*inputs.sample_at(c, {n: other for n, (_, other) in moved.items()}, 1))
            except Exception:
                return [name for name, found in lengths.items() if None not in found]
    finally:
        for handle in handles:
            handle.remove()
    return [name for name, found in lengths.items()
            if None not in found and found[:seen[name]] != found[seen[name]:]]
