"""PyTorch's own single-thread latency, the reference for //benchmarks:resnet18_latency and
the sweeps: its best deployable forms beside the ones people often time by mistake.

Run with Debian's python3-torch, in the same sitting as the C++ side:
    /usr/bin/python3 tools/pytorch_resnet18_latency.py [engine] [model ...]
(default engine onednn, model resnet18; any torchvision classification model name). Prints
one line per form: model, form, median ms over 5 repetitions of 1 s, batch 1 at 224x224:
  fp32 frozen-torchscript     torch.jit.freeze(torch.jit.script(model))
  fp32 optimize-for-inference torch.jit.optimize_for_inference (BatchNorm folded, oneDNN
                              convolutions on prepacked weights): the fp32 reference
  int8 fx-graphmodule         convert_fx's GraphModule, run by Python
  int8 scripted-frozen        torch.jit.freeze(torch.jit.script(converted)): the int8 reference
"""
import copy
import os
import statistics
import sys
import time

# oneDNN 2.6.3's AMX int8 kernels for grouped and depthwise convolutions are wrong; the cap
# must be in the environment before torch loads oneDNN. A caller's own cap wins.
if "DNNL_MAX_CPU_ISA" not in os.environ:
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch.ao.quantization import get_default_qconfig_mapping  # noqa: E402
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: E402


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


def measure(name, engine):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.script(copy.deepcopy(model)))
        print(f"{name} fp32 frozen-torchscript {median_ms(frozen, x):.3f} ms", flush=True)
        optimized = torch.jit.optimize_for_inference(torch.jit.script(copy.deepcopy(model)))
        print(f"{name} fp32 optimize-for-inference {median_ms(optimized, x):.3f} ms", flush=True)
        prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(engine),
                              example_inputs=(x,))
        for _ in range(4):
            prepared(torch.randn(2, 3, 224, 224))
        converted = convert_fx(prepared)
        print(f"{name} int8 fx-graphmodule {median_ms(converted, x):.3f} ms", flush=True)
        scripted = torch.jit.freeze(torch.jit.script(converted))
        print(f"{name} int8 scripted-frozen {median_ms(scripted, x):.3f} ms", flush=True)


def main():
    engine = sys.argv[1] if len(sys.argv) > 1 else "onednn"
    models = sys.argv[2:] or ["resnet18"]
    torch.set_num_threads(1)
    torch.backends.quantized.engine = engine
    for name in models:
        measure(name, engine)


if __name__ == "__main__":
    main()
