"""The package's torch-free tier: what is pure logic runs here in seconds, without torch
(the conversions themselves are tested by ptm-build's cargo tests, on real models)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
