"""The inputs a build runs a model on: generated examples and declared calibration samples."""
import math
import os
from typing import Any, Optional

from .common import SEED, Failure, describe, log
from .conversion import Conversion
from . import verify

EXAMPLE_SAMPLES = 8


def example_samples(c: Conversion):
    generator = c.torch.Generator().manual_seed(SEED)
    return [tuple(random_tensor(c, spec, generator) for spec in c.decl["inputs"]) for _ in range(EXAMPLE_SAMPLES)]

def random_tensor(c: Conversion, spec, generator):
    torch = c.torch
    shape = [d if isinstance(d, int) else d["example"] for d in spec["shape"]]
    dtype = getattr(torch, spec["dtype"])
    low: Any
    high: Any
    low, high = spec["range"] if spec.get("range") else (None, None)
    if spec["dtype"].startswith("float"):
        if low is None:
            values = torch.randn(shape, generator=generator)
        else:
            values = torch.rand(shape, generator=generator) * (high - low) + low
        return values.to(dtype)
    if spec["dtype"] == "bool":
        return torch.randint(0, 2, shape, generator=generator).bool()
    if low is None:
        low, high = (0, 256) if spec["dtype"] == "uint8" else (0, 10)
    return torch.randint(int(math.ceil(low)), int(math.ceil(high)), shape, generator=generator, dtype=dtype)

def input_specs(c: Conversion):
    return [{"name": s["name"], "dtype": s["dtype"], "shape": s["shape"]} for s in c.decl["inputs"]]

def calibration_samples(c: Conversion):
    directory = c.decl.get("calibration")
    if not directory:
        return []
    # The list comes from ptm-build, which walked the directory with the same rule
    # that builds the cache key: every sample read here is also hashed.
    files = c.job.calibration_files
    if not files:
        raise Failure("load", f"calibration directory {directory} holds no .pt or .pth files",
                      f"save samples with torch.save(tensor_or_tuple, \"{directory}/<n>.pt\")")
    log(c.name, f"reading {len(files)} calibration samples from {directory}")
    return [calibration_sample(c, relative) for relative in files]

def calibration_sample(c: Conversion, relative):
    torch = c.torch
    try:
        value = torch.load(os.path.join(c.crate_dir, relative), map_location="cpu", weights_only=True)
    except Exception as e:
        raise Failure("load", f"calibration sample {relative} could not be read: {str(e).splitlines()[0]}",
                      "save each sample with torch.save(tensor_or_tuple_of_tensors, path)")
    names = [spec["name"] for spec in c.decl["inputs"]]
    if isinstance(value, dict):
        sample = sample_from_dict(c, value, relative, names)
    else:
        sample = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(sample) != len(names) or not all(isinstance(t, torch.Tensor) for t in sample):
        items = ", ".join(describe(t) for t in sample)
        raise Failure("load", f"calibration sample {relative} holds {describe(value)} ({items}); the model declares "
                      f"{len(names)} tensor input(s): {', '.join(names)}",
                      "save one tensor per declared input: a tensor, a tuple in declaration order, or a dict keyed "
                      "by the input names")
    check_sample(c, sample, relative)
    return sample

def sample_from_dict(c: Conversion, value, relative, names):
    """A dict keyed by the declared input names (a tokenizer's output, say)."""
    missing = [n for n in names if n not in value]
    extra = [str(k) for k in value if k not in names]
    if missing or extra:
        found = ", ".join(str(k) for k in value) or "none"
        raise Failure("load", f"calibration sample {relative} holds a dict with keys {found}; the model's inputs are "
                      f"{', '.join(names)}" + (f" (missing: {', '.join(missing)})" if missing else "")
                      + (f" (not inputs: {', '.join(extra)})" if extra else ""),
                      "key the dict by the declared input names, or save a tuple in declaration order")
    return tuple(value[n] for n in names)

def check_sample(c: Conversion, sample, shown):
    for tensor, spec in zip(sample, c.decl["inputs"]):
        fixed = [d if isinstance(d, int) else None for d in spec["shape"]]
        shape = list(tensor.shape)
        dtype = str(tensor.dtype).replace("torch.", "")
        if dtype != spec["dtype"] or len(shape) != len(fixed) or any(f is not None and f != s for f, s in zip(fixed, shape)):
            raise Failure("load", f"calibration sample {shown}: input `{spec['name']}` is {dtype} {shape}, "
                          f"declared {spec['dtype']} {[d if isinstance(d, int) else d['name'] for d in spec['shape']]}",
                          "make the samples match the declared inputs")
        check_finite(c, tensor, spec["name"], shown)

def check_finite(c: Conversion, tensor, name, shown):
    """Calibration measures each activation's range; a NaN or infinity has none, and
    torch's observers would fail later naming neither the sample nor the value."""
    torch = c.torch
    if not tensor.is_floating_point():
        return
    bad = ~torch.isfinite(tensor)
    count = int(bad.sum())
    if count:
        first = [int(i) for i in bad.nonzero()[0]]
        value = float(tensor[tuple(first)])
        raise Failure("load", f"calibration sample {shown}: input `{name}` holds {count} non-finite value(s) of "
                      f"{tensor.numel()} (first: {value} at {first})",
                      f"replace or remove {shown} in `calibration` = \"{c.decl.get('calibration')}\": calibration "
                      "measures activation ranges, and NaN or infinity has none (look at the preprocessing that saved it)")

def dynamic_dims(c: Conversion):
    """{name: the declared dimension} of every dynamic dimension, each name once."""
    return {d["name"]: d for spec in c.decl["inputs"] for d in spec["shape"] if not isinstance(d, int)}

def size_range(d):
    """The sizes a dynamic dimension may take, both bounds included: its declared range,
    else 1 and no maximum (None)."""
    return d.get("min", 1), d.get("max")

def size_step(d):
    """The step between a dynamic dimension's allowed sizes (1 unless declared)."""
    return d.get("step", 1)

def in_range(d, size):
    low, high = size_range(d)
    return low <= size and (high is None or size <= high) and size % size_step(d) == 0

def sample_at(c: Conversion, sizes, seed):
    """One input per declared input, with the named dynamic dimensions at `sizes`."""
    generator = c.torch.Generator().manual_seed(seed)
    return tuple(random_tensor(c, dict(spec, shape=[dict(d, example=sizes[d["name"]])
                                                 if not isinstance(d, int) and d["name"] in sizes else d
                                                 for d in spec["shape"]]), generator)
                 for spec in c.decl["inputs"])

# A sample at the bounds of a range is skipped past this size: the declaration's own
# bound on a sample at the example sizes (MAX_EXAMPLE_BYTES / EXAMPLE_SAMPLES in inputs.rs).
MAX_RANGE_SAMPLE_BYTES = 256 << 20

def range_samples(c: Conversion):
    """Samples with each dimension that declares a range at its smallest size, its middle
    and its largest (the others at their example): a .pte is exported and its memory
    planned for the range, so verification runs across it, the maximum included."""
    samples = []
    for index, (name, d) in enumerate(sorted(dynamic_dims(c).items())):
        low, high = size_range(d)
        if high is None:
            continue
        step = size_step(d)
        for size in sorted({low, (low + high) // 2 // step * step, high} - {d["example"]}):
            sample = sample_at(c, {name: size}, SEED + 10 + index)
            if sum(t.element_size() * t.numel() for t in sample) > MAX_RANGE_SAMPLE_BYTES:
                log(c.name, f"not verifying `{name}` = {size}: its sample is larger than 256 MiB")
                continue
            samples.append(sample)
    return samples

def alternate_sizes(c: Conversion):
    """{name: (example, another size in its range)} of the dynamic dimensions that can
    take another size (example - step, example + step or 2 * step)."""
    sizes = {}
    for name, d in dynamic_dims(c).items():
        example, step = d["example"], size_step(d)
        sizes[name] = (example, next((s for s in (example - step, example + step, 2 * step) if s >= 1 and s != example
                                      and in_range(d, s)), example))
    return {name: pair for name, pair in sizes.items() if pair[0] != pair[1]}

def mark_dynamic_outputs(c: Conversion, model, outputs):
    """Runs once more with every dynamic input dimension at another size (inside its
    range); output dimensions that change are dynamic, named after the input dimension
    they follow, with its range."""
    sizes = alternate_sizes(c)
    if not sizes:
        return
    generator = c.torch.Generator().manual_seed(SEED + 1)
    moved = []
    for spec in c.decl["inputs"]:
        shape = [d if isinstance(d, int) else {"name": d["name"], "example": sizes[d["name"]][1]} for d in spec["shape"]]
        moved.append(random_tensor(c, dict(spec, shape=shape), generator))
    try:
        produced = verify.outputs_of(c, model, tuple(moved), "load")
    except Failure:
        return  # the model takes only the example sizes; the outputs stay as observed
    by_size = {alternate: (name, example) for name, (example, alternate) in sizes.items()}
    declared = dynamic_dims(c)
    for spec, tensor in zip(outputs, produced):
        for i, (was, now) in enumerate(zip(spec["shape"], tensor.shape)):
            if was != now:
                name, _ = by_size.get(now, (f"{spec['name']}_dim{i}", None))
                dim = {"name": name, "example": was}
                followed = declared.get(name, {})
                if was == followed.get("example"):
                    dim.update({k: followed[k] for k in ("min", "max", "step") if k in followed})
                spec["shape"][i] = dim

def export_dims(c: Conversion, steps: Optional[dict[str, int]] = None):
    """The declared dynamic dimensions as torch.export `Dim`s, one per name, and per
    input the `{axis: Dim}` of its dynamic axes (None for a fixed input). A declared
    range bounds the `Dim`; without one it is at least 1 and unbounded. A declared step
    makes it `step * Dim` over the multiples in the range; `steps` gives some dimensions
    another step (to try one)."""
    dims: dict[str, Any] = {}
    shapes: list[Optional[dict[int, Any]]] = []
    for spec in c.decl["inputs"]:
        shape = {}
        for index, d in enumerate(spec["shape"]):
            if not isinstance(d, int):
                low, high = size_range(d)
                step = (steps or {}).get(d["name"], size_step(d))
                if step > 1:
                    dims.setdefault(d["name"], step * c.torch.export.Dim(d["name"], min=max(1, -(-low // step)), max=high // step))
                else:
                    dims.setdefault(d["name"], c.torch.export.Dim(d["name"], min=low, max=high))
                shape[index] = dims[d["name"]]
        shapes.append(shape or None)
    return dims, shapes
