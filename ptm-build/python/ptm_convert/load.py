"""Loading the declared model: a Python callable (with optional weights) or a TorchScript
archive, each failure naming the file and what to change."""
import os
import sys

from .common import Failure, import_file, last_frames, log
from .conversion import Conversion


def load(c: Conversion):
    torch = c.torch
    source = c.decl["source"]
    if source["kind"] == "python":
        model = load_python(c, source["file"], source["callable"])
    else:
        log(c.name, f"loading TorchScript archive {source['file']}")
        try:
            model = torch.jit.load(c.path(source["file"]), map_location="cpu")
        except Exception as e:
            raise Failure("load", f"torch.jit.load could not read {source['file']}: {e}",
                          "save the archive with torch.jit.save(torch.jit.script(model), path)", last_frames())
    if c.decl.get("weights"):
        load_weights(c, model, c.decl["weights"])
    return model.eval()

def load_python(c: Conversion, file, callable_name):
    torch = c.torch
    log(c.name, f"loading {file}:{callable_name}")
    path = c.path(file)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        module = import_file(f"ptm_model_{c.name}", path)
    except Exception as e:
        raise Failure("load", f"importing {file} raised {type(e).__name__}: {e}",
                      f"fix the error in {file}; it must import with the build's Python", last_frames())
    factory = getattr(module, callable_name, None)
    if factory is None or not callable(factory):
        found = sorted(n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_"))
        raise Failure("load", f"{file} has no callable `{callable_name}` (callables there: {', '.join(found) or 'none'})",
                      f"write source = \"{file}:<name>\" with the function that returns the nn.Module")
    try:
        model = factory()
    except Exception as e:
        raise Failure("load", f"{file}:{callable_name}() raised {type(e).__name__}: {e}",
                      f"fix {callable_name} so that it returns the model without arguments", last_frames())
    if not isinstance(model, torch.nn.Module):
        raise Failure("load", f"{file}:{callable_name}() returned {type(model).__name__}, not a torch.nn.Module",
                      f"return the model instance from {callable_name}")
    return model

def load_weights(c: Conversion, model, weights):
    torch = c.torch
    log(c.name, f"loading weights {weights}")
    try:
        state = torch.load(c.path(weights), map_location="cpu", weights_only=True)
    except Exception as e:
        raise Failure("load", f"torch.load(weights_only=True) could not read {weights}: {str(e).splitlines()[0]}",
                      "save plain tensors only: torch.save(model.state_dict(), path)", last_frames(2))
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise Failure("load", f"{weights} holds {type(state).__name__}, not a state_dict",
                      "save with torch.save(model.state_dict(), path)")
    try:
        model.load_state_dict(state, strict=True)
    except Exception as e:
        raise Failure("load", f"{weights} does not fit the model: {e}",
                      "save the state_dict of the same architecture the source builds")
