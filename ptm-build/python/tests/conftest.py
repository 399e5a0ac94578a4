"""The package's torch-free tier: what is pure logic runs here in seconds, without torch
(the conversions themselves are tested by ptm-build's cargo tests, on real models).
test_recurrent.py checks torch modules of the package against torch's own in eager
PyTorch, so it needs torch (`.venv`, as tools/test runs it) and is skipped without it;
test_patterns.py, test_provenance.py, test_decompositions.py and test_replay.py lower
small models with ExecuTorch in new processes (new_process.py) and need both."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
