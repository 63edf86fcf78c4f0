#!/usr/bin/python3
"""Runs an exported TorchScript file the way a PyTorch user would, with no quantbench code.

    /usr/bin/python3 tests/models/run_exported.py MODEL.pt INPUT.pt OUTPUT.pt [ENGINE]

INPUT.pt and OUTPUT.pt hold {"tensor": t}; the int8 engine (default onednn) is selected
before loading, since loading prepacks the int8 weights for the current engine.
"""

import sys

import torch

model_path, input_path, output_path = sys.argv[1:4]
torch.backends.quantized.engine = sys.argv[4] if len(sys.argv) > 4 else "onednn"
model = torch.jit.load(model_path)
x = torch.load(input_path)["tensor"]
with torch.no_grad():
    y = model(x)
torch.save({"tensor": y}, output_path)
