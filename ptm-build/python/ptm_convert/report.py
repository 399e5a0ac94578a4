"""The report of one converted model, the same for both formats: what ptm-build keeps in
the cache entry (ptm_build::worker::Converted) and writes into models.json."""
import platform
from typing import Any, Optional, TypedDict

from .conversion import Conversion, LayerRow, Size, StageDrift, StageSeconds, TensorSpec
from . import inputs


class Report(TypedDict):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    sizes: list[Size]
    operators: list[str]
    # The .ptl's bytecode version; 0 for a .pte.
    bytecode_version: int
    drift: list[StageDrift]
    torch: str
    calibration_samples: int
    # Set by the worker once the conversion is over.
    seconds: float
    stage_seconds: list[StageSeconds]
    warnings: list[str]
    trace_risk: Optional[str]
    layers: list[LayerRow]
    layers_unavailable: Optional[str]
    # The ExecuTorch release that exported a .pte; None for a .ptl.
    executorch: Optional[str]
    # A .pte's operators inside and outside the XNNPACK delegate; None for a .ptl.
    delegated_operators: Optional[int]
    undelegated_operators: Optional[int]
    # A .pte's planned activation memory in bytes; None for a .ptl.
    planned_memory: Optional[int]
    # The Python and torchao that converted it (torchao: None where it is not installed).
    python_version: str
    torchao: Optional[str]


def build(c: Conversion, outputs: list[TensorSpec], operators: list[str], bytecode_version: int = 0,
          executorch: Optional[str] = None, delegation: Optional[dict[str, Any]] = None) -> Report:
    """The report of conversion `c`, which is over (its stage is `done`)."""
    return {
        "inputs": inputs.input_specs(c),
        "outputs": outputs,
        "sizes": c.sizes,
        "operators": operators,
        "bytecode_version": bytecode_version,
        "drift": c.drift,
        "torch": str(c.torch.__version__),
        "calibration_samples": c.calibration_count,
        "seconds": 0.0,
        "stage_seconds": c.timings,
        "warnings": c.warnings,
        "trace_risk": c.trace_risk,
        "layers": c.layers,
        "layers_unavailable": c.layers_unavailable,
        "executorch": executorch,
        "delegated_operators": delegation["delegated"] if delegation else None,
        "undelegated_operators": delegation["undelegated"] if delegation else None,
        "planned_memory": c.planned_memory,
        "python_version": platform.python_version(),
        "torchao": installed_version("torchao"),
    }


def installed_version(distribution: str) -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
