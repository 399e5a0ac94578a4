"""One model's conversion as every step sees it: the job, the stage it is in (and how long
each took), and what the steps measured so far. The steps (load, inputs, adapt, trace,
quantize, layers, verify) are functions of a `Conversion`; the formats (pipeline: .ptl,
pte: .pte) run them in order and report.build turns the result into the report."""
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypedDict

# torch, its modules and tensors are typed as Any: torch's own annotations say little
# about TorchScript modules, and the package must import without torch for its tests.
Torch = Any
Module = Any
Tensor = Any
Sample = tuple[Any, ...]
Outputs = tuple[Any, ...]
# A ptm_build::ModelDecl as JSON; its fields are documented in docs/manifest.md.
Decl = dict[str, Any]
TensorSpec = dict[str, Any]

# Calibration samples a conversion also verifies on (all of them calibrate).
MAX_CALIBRATION_SAMPLES = 256


class Size(TypedDict):
    stage: str
    bytes: int


class StageSeconds(TypedDict):
    stage: str
    seconds: float


class OutputDrift(TypedDict):
    name: str
    max_abs: float
    source_max_abs: float
    relative: Optional[float]
    top1: Optional[float]
    top1_rows: Optional[int]
    top1_interval: Optional[list[float]]
    mismatched: Optional[int]
    elements: int


class StageDrift(TypedDict):
    stage: str
    samples: int
    outputs: list[OutputDrift]


class LayerRow(TypedDict):
    name: str
    kind: str
    sqnr_db: float
    relative: float


@dataclass
class Job:
    """One model of a request (REQUEST.json's `models`, see worker.py)."""
    decl: Decl
    out: str
    calibration_files: list[str] = field(default_factory=list)
    key: str = ""
    ptm_build: str = ""
    runner_dir: Optional[str] = None

    @staticmethod
    def from_json(value: dict[str, Any]) -> "Job":
        return Job(decl=value["decl"], out=value["out"], calibration_files=list(value.get("calibration_files", [])),
                   key=value.get("key", ""), ptm_build=value.get("ptm_build", ""), runner_dir=value.get("runner_dir"))


class Conversion:
    """The state one model's conversion carries from step to step."""

    def __init__(self, torch: Torch, job: Job, crate_dir: str, scratch: str,
                 on_stage: Callable[[str], None] = lambda stage: None) -> None:
        self.torch = torch
        self.job = job
        self.decl: Decl = job.decl
        self.name: str = job.decl["name"]
        self.crate_dir = crate_dir
        self.out = job.out
        # Where generated modules (adapters) are written.
        self.scratch = scratch
        self.on_stage = on_stage
        # Seconds per finished stage, for the cache entry's report (not models.json).
        self.timings: list[StageSeconds] = []
        self._stage: Optional[str] = None
        self._since = 0.0
        self.stage = "load"
        self.sizes: list[Size] = []
        self.drift: list[StageDrift] = []
        # (stage, module) as measured, to measure again in full when a check fails.
        self.measured: list[tuple[str, Any]] = []
        # Findings that do not fail the build; they become cargo warnings.
        self.warnings: list[str] = []
        # Set by adapt: the outputs' names, and where the user's module names live inside
        # the module it returns.
        self.output_names: list[str] = []
        self.selected_names: list[str] = []
        # The outputs as observed on the example inputs, dynamic dimensions marked.
        self.outputs: list[TensorSpec] = []
        self.inner_prefix = ""
        self.float_model: Module = None
        self.calibration: list[Sample] = []
        self.calibration_count = 0
        # The dynamic model as quantized, before export (eager dynamic INT8 only).
        self.quantized_eager: Module = None
        self.trace_risk: Optional[str] = None
        self.layers: list[LayerRow] = []
        self.layers_unavailable: Optional[str] = None
        # How many samples at the end of the runtime stage's list count towards top-1
        # agreement alone (verify.top1_samples).
        self.top1_only = 0
        # A .pte's operators inside and outside the XNNPACK delegate (pte.delegation).
        self.delegation: Optional[dict[str, Any]] = None
        # A .pte's planned activation memory in bytes (pte.lower).
        self.planned_memory: Optional[int] = None
        self.layer_samples = 0
        # Observers that saw no calibration data.
        self.unobserved = 0

    @property
    def stage(self) -> str:
        return self._stage or "load"

    @stage.setter
    def stage(self, stage: str) -> None:
        # The supervisor reads it back when this process dies without a result.
        now = time.perf_counter()
        if self._stage is not None:
            self.timings.append({"stage": self._stage, "seconds": round(now - self._since, 4)})
        self._stage, self._since = stage, now
        self.on_stage(stage)

    def path(self, relative: str) -> str:
        """A file the declaration names, relative to the crate."""
        return os.path.join(self.crate_dir, relative)
