"""PyTorch's own single-thread ResNet-18 latency, the reference for
//eval:resnet18_latency_benchmark: frozen TorchScript fp32 and FX-converted int8.

Run with Debian's python3-torch: /usr/bin/python3 tools/pytorch_resnet18_latency.py [engine]
Prints one line per variant: name, median ms over repetitions of 1 s each.
"""
import copy
import statistics
import sys
import time

import torch
import torchvision
from torch.ao.quantization import QConfigMapping, get_default_qconfig
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx


def median_ms(fn, x, repetitions=5, seconds=1.0):
    for _ in range(10):
        fn(x)
    medians = []
    for _ in range(repetitions):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn(x)
            calls += 1
        medians.append((time.perf_counter() - start) * 1000.0 / calls)
    return statistics.median(medians)


def main():
    engine = sys.argv[1] if len(sys.argv) > 1 else "onednn"
    torch.set_num_threads(1)
    torch.backends.quantized.engine = engine
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.script(copy.deepcopy(model)))
        print(f"pytorch fp32 frozen-torchscript {median_ms(frozen, x):.3f} ms")
        prepared = prepare_fx(copy.deepcopy(model),
                              QConfigMapping().set_global(get_default_qconfig(engine)),
                              example_inputs=(x,))
        for _ in range(4):
            prepared(torch.randn(2, 3, 224, 224))
        quantized = convert_fx(prepared)
        print(f"pytorch int8 fx-{engine} {median_ms(quantized, x):.3f} ms")


if __name__ == "__main__":
    main()
