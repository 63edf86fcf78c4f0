"""PyTorch's side of the latency comparison: the rows of //benchmarks:vs_pytorch, built,
quantized with PyTorch FX and timed in PyTorch's deployable forms.

Run with Debian's python3-torch, in the same sitting as the C++ side:
    /usr/bin/python3 tools/pytorch_latency.py [--engine onednn] [--threads 1] [ROW ...]
        time each row's forms from Python, batch 1; prints "ROW FORM MEDIAN ms"
    /usr/bin/python3 tools/pytorch_latency.py --export DIR [ROW ...]
        write each row's models into DIR/ROW/ for //benchmarks:vs_pytorch, which times
        ours and PyTorch's side by side in one process and prints the ratios

Rows (default: all):
  resnet18_224      torchvision resnet18, 3x224x224
  resnet18_28       torchvision resnet18 with a 1-channel conv1 and 10 classes, 1x28x28
  mobilenet_v2_224  torchvision mobilenet_v2, 3x224x224
  quickstart_28     the quickstart's fmnist_resnet8 with its shipped checkpoint, 1x28x28

Forms:
  fp32 frozen-torchscript     torch.jit.freeze(torch.jit.script(model))
  fp32 optimize-for-inference torch.jit.optimize_for_inference (BatchNorm folded, oneDNN
                              convolutions on prepacked weights): the fp32 reference
  int8 fx-graphmodule         convert_fx's GraphModule, run by Python
  int8 scripted-frozen        torch.jit.freeze(torch.jit.script(converted)): the int8 reference

Weights come from torch.manual_seed(0) (the quickstart row loads its checkpoint), BatchNorm
statistics from three train-mode passes, calibration from 8 images of
torch.Generator().manual_seed(1) in batches of 4 with get_default_qconfig_mapping(engine).
Export writes fp32_scripted.pt (torch.jit.script), calibration.pt and input.pt
({"tensor": ...}) and int8_frozen.pt (the int8 reference).
"""
import argparse
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
from torch import nn  # noqa: E402
from torch.ao.quantization import get_default_qconfig_mapping  # noqa: E402
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from make_zoo_fixtures import fmnist_resnet8  # noqa: E402

CALIBRATION_IMAGES = 8
CALIBRATION_BATCH = 4


def resnet18_1channel():
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def quickstart():
    model = fmnist_resnet8(10)
    model.load_state_dict(torch.load(os.path.join(ROOT, "models/checkpoints/fmnist_resnet8.pt")))
    return model


# row -> (model builder, input shape of one image, whether BatchNorm statistics are set up)
ROWS = {
    "resnet18_224": (torchvision.models.resnet18, (3, 224, 224), True),
    "resnet18_28": (resnet18_1channel, (1, 28, 28), True),
    "mobilenet_v2_224": (torchvision.models.mobilenet_v2, (3, 224, 224), True),
    "quickstart_28": (quickstart, (1, 28, 28), False),  # trained: its statistics are real
}


def build(row, engine):
    """The fp32 model, its calibration and eval tensors, and PyTorch FX's converted model."""
    builder, shape, set_statistics = ROWS[row]
    torch.manual_seed(0)
    model = builder()
    calibration = torch.randn((CALIBRATION_IMAGES,) + shape,
                              generator=torch.Generator().manual_seed(1))
    x = torch.randn((1,) + shape, generator=torch.Generator().manual_seed(2))
    if set_statistics:
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(calibration)
    model.eval()
    with torch.no_grad():
        prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(engine),
                              example_inputs=(x,))
        for start in range(0, CALIBRATION_IMAGES, CALIBRATION_BATCH):
            prepared(calibration[start:start + CALIBRATION_BATCH])
        converted = convert_fx(prepared)
    return model, calibration, x, converted


def save_tensor(path, tensor):
    torch.save({"tensor": tensor}, path)


def export(row, engine, out):
    model, calibration, x, converted = build(row, engine)
    os.makedirs(out, exist_ok=True)
    with torch.no_grad():
        torch.jit.save(torch.jit.script(model), os.path.join(out, "fp32_scripted.pt"))
        frozen = torch.jit.freeze(torch.jit.script(converted))
        torch.jit.save(frozen, os.path.join(out, "int8_frozen.pt"))
    save_tensor(os.path.join(out, "calibration.pt"), calibration)
    save_tensor(os.path.join(out, "input.pt"), x)


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


def measure(row, engine):
    model, _, x, converted = build(row, engine)
    with torch.no_grad():
        forms = [
            ("fp32", "frozen-torchscript", torch.jit.freeze(torch.jit.script(copy.deepcopy(model)))),
            ("fp32", "optimize-for-inference",
             torch.jit.optimize_for_inference(torch.jit.script(copy.deepcopy(model)))),
            ("int8", "fx-graphmodule", converted),
            ("int8", "scripted-frozen", torch.jit.freeze(torch.jit.script(converted))),
        ]
        for precision, form, fn in forms:
            print(f"{row} {precision} {form} {median_ms(fn, x):.3f} ms", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", default=list(ROWS), metavar="ROW")
    parser.add_argument("--engine", default="onednn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--export", metavar="DIR")
    args = parser.parse_args()
    unknown = [row for row in args.rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; rows: {', '.join(ROWS)}")
    torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = args.engine
    for row in args.rows:
        if args.export:
            export(row, args.engine, os.path.join(args.export, row))
        else:
            measure(row, args.engine)


if __name__ == "__main__":
    main()
