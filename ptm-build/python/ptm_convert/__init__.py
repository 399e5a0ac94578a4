"""ptm's converter: PyTorch models to Lite Interpreter files (.ptl) and ExecuTorch
programs (.pte), verified against the source model. ptm-build embeds this package and
runs its worker at compile time; `python -m ptm_convert REQUEST.json` runs the same
conversion from Python (see README.md)."""
