"""Models as their libraries build them: inputs bound to `forward`'s parameters by name,
and outputs (a dict, a Hugging Face ModelOutput, nested tuples) flattened into named
tensors. What comes out is a module ptm can export: positional tensors in, a tensor or
a flat tuple of tensors out."""
import inspect
import os

from .common import DTYPE_CODES, Failure, describe, import_file, log, last_frames
from .conversion import Conversion


def keyword_binding(model, names):
    """The declared names as keywords when every one is a parameter of `forward`
    (Hugging Face's input_ids, attention_mask, ...); None means by position."""
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return None  # a compiled forward has no Python signature
    named = [p for p in parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    positional = [p.name for p in named if p.kind == p.POSITIONAL_OR_KEYWORD]
    if not all(n in {p.name for p in named} for n in names):
        return None
    if positional[:len(names)] == list(names):
        return None  # by name and by position agree: the plain call keeps the graph as it was
    return list(names)


def leaves(value, path=()):
    """(path, value) for every leaf of nested dicts, ModelOutputs, tuples and lists, in
    order. A ModelOutput already leaves out its None fields."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from leaves(item, path + (index,))
    else:
        yield path, value


def path_name(path):
    """An output's default name: dict keys and tuple positions joined by `_`, with
    `output` before a leading position (`output0`, `hidden_states_1`)."""
    parts = [str(p) for p in path]
    if not parts:
        return "output0"
    if isinstance(path[0], int):
        parts[0] = f"output{parts[0]}"
    return "_".join(parts)


def path_text(path):
    return "".join(f"[{p!r}]" for p in path) or "the result"


class Selection:
    """Which leaves of the model's result become outputs, in which order, and their names."""

    def __init__(self, paths, names, notes):
        self.paths, self.names, self.notes = paths, names, notes

    def is_plain(self, result, torch):
        """True when the model already returns exactly these outputs as ptm takes them."""
        if isinstance(result, torch.Tensor):
            return self.paths == [()]
        return (isinstance(result, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in result)
                and self.paths == [(i,) for i in range(len(result))])


def select(result, declared, model_name, torch):
    """The outputs of `result` under the declaration's `outputs` list."""
    table = f"package.metadata.models.{model_name}.outputs"
    found = list(leaves(result))
    notes = [f"output {path_text(p)} is None and is left out" for p, v in found if v is None]
    found = [(p, v) for p, v in found if v is not None]
    if not found:
        raise Failure("load", f"forward returned {describe(result)} with no tensor in it",
                      "return the model's tensors (a Tensor, a tuple, or a dict of them)")
    named = {path_name(p): p for p, _ in found}
    keyed = isinstance(result, dict)
    if declared and all(n in named for n in declared):
        paths = [named[n] for n in declared]
    elif declared and not keyed and len(declared) == len(found):
        paths = [p for p, _ in found]  # names given by position
    elif declared:
        missing = [n for n in declared if n not in named]
        raise Failure("load", f"`outputs` names {', '.join(f'`{n}`' for n in missing)}, which forward's result "
                      f"({describe(result)}) does not hold; its tensors are: {', '.join(named)}",
                      f"list names from those in {table}" + ("" if keyed else f", or {len(found)} name(s) by position"))
    else:
        paths = [p for p, _ in found]
    chosen = [(p, v) for p, v in found if p in paths]
    wrong = [(p, v) for p, v in chosen if not isinstance(v, torch.Tensor)]
    if wrong:
        p, v = wrong[0]
        raise Failure("load", f"forward's result at {path_text(p)} is {describe(v)}, not a tensor; ptm's outputs are tensors",
                      f"select tensor outputs by name in {table}" if keyed else "return tensors only from forward()")
    names = list(declared) if declared else [path_name(p) for p in paths]
    return Selection(paths, names, notes)


SOURCE = '''"""ptm's adapter for {name}: positional tensors in, flat tensors out."""
import torch


class PtmAdapter(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, {params}):
        result = self.inner({call})
        return {returned}
'''


def adapter(model, binding, selection, count, name, directory):
    """A module calling `model` by keyword and returning the selected leaves. Written
    as a source file so that torch.jit.script can read it as well as trace it."""
    params = [f"arg{i}" for i in range(count)]
    if binding:
        call = ", ".join(f"{k}={p}" for k, p in zip(binding, params))
    else:
        call = ", ".join(params)
    picked = [f"result{''.join(f'[{k!r}]' for k in path)}" for path in selection.paths]
    returned = picked[0] if len(picked) == 1 else "(" + ", ".join(picked) + ",)"
    source = SOURCE.format(name=name, params=", ".join(params), call=call, returned=returned)
    # In the conversion's scratch directory (ptm-build's, which it removes).
    path = os.path.join(directory, f"ptm_adapter_{name}.py")
    with open(path, "w") as f:
        f.write(source)
    return import_file(f"ptm_adapter_{name}", path).PtmAdapter(model)


def adapt(c: Conversion, model, sample):
    """The model itself when it already takes positional tensors and returns flat
    ones; otherwise an adapter around it. Sets c.inner_prefix to where the
    user's module names live inside what is returned."""
    torch = c.torch
    c.inner_prefix = ""
    names = [spec["name"] for spec in c.decl["inputs"]]
    binding = None if isinstance(model, torch.jit.ScriptModule) else keyword_binding(model, names)
    try:
        if binding:
            result = model(**{k: t.clone() for k, t in zip(binding, sample)})
        else:
            result = model(*(t.clone() for t in sample))
    except Exception as e:
        raise Failure("load", f"forward failed on the example inputs: {type(e).__name__}: {str(e).strip()}",
                      "check the declared inputs (dtype, shape, range) against what forward() expects", last_frames())
    selection = select(result, c.decl["outputs"], c.name, torch)
    c.selected_names = selection.names
    for note in selection.notes:
        log(c.name, note)
    if binding is None and selection.is_plain(result, torch):
        return model
    how = []
    if binding:
        how.append(f"inputs by keyword ({', '.join(binding)})")
    if not selection.is_plain(result, torch):
        how.append(f"outputs {', '.join(selection.names)} taken from {describe(result)}")
    log(c.name, "calling the model with " + " and ".join(how))
    wrapped = adapter(model, binding, selection, len(names), c.name, c.scratch)
    c.inner_prefix = "inner."
    if isinstance(model, torch.jit.ScriptModule):
        try:
            return torch.jit.script(wrapped)
        except Exception as e:
            raise Failure("load", f"the TorchScript archive's outputs could not be selected in TorchScript: "
                          f"{str(e).strip().splitlines()[0]}",
                          "save the archive from a module that returns a tensor or a flat tuple of tensors")
    return wrapped

def output_specs(c: Conversion, outputs):
    # adapt() chose these names for exactly these outputs.
    specs = [{"name": n, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape)}
             for n, t in zip(c.selected_names, outputs)]
    for spec in specs:
        if spec["dtype"] not in DTYPE_CODES:
            raise Failure("load", f"output `{spec['name']}` holds {spec['dtype']} elements, which the runtime cannot hand "
                          f"to Rust (it takes {', '.join(DTYPE_CODES)})",
                          "convert it in the model before returning it (for example `.float()`)")
    return specs
