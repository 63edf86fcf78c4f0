#!/usr/bin/python3
"""PyTorch reference data for the TorchScript importer tests (tests/quant).

Run with Debian's python3-torch / python3-torchvision (torch 1.13, torchvision 0.14):
    /usr/bin/python3 tests/quant/torchscript_reference.py MODEL OUTDIR \
        [--size 96] [--calibration 8] [--batch 4] [--classes 1000]

MODEL is a torchvision classification model name (resnet18, mobilenet_v2, ...).
Everything is deterministic, down to the bytes of the saved files (the script
re-execs itself with PYTHONHASHSEED=0 unless the caller set it). The weights come
from the global generator after torch.manual_seed(0), the calibration tensor from
torch.Generator().manual_seed(1), the eval input from torch.Generator().manual_seed(2).
Before anything is saved the model runs three no_grad forward passes over the
calibration tensor in train() mode, so that BatchNorm has non-trivial running
statistics (with the default momentum 0.1 they move 1 - 0.9**3 = 27% of the way from
mean 0 / var 1 to the calibration batch statistics), and is then put in eval() mode.

Writes into OUTDIR:
  scripted.pt             torch.jit.save(torch.jit.script(model))
  traced.pt               torch.jit.save(torch.jit.trace(model, eval_input[:1],
                          check_trace=False)), traced with batch 1 on purpose: the
                          importer must handle other batch sizes
  state_dict.pt           torch.save(model.state_dict())
  calibration.pt          {"tensor": float32 [N, 3, S, S]}, N = --calibration
  eval_input.pt           {"tensor": float32 [4, 3, S, S]}
  fp32_logits.pt          {"tensor": model(eval_input)}
  fx_graph.json           torch.fx.symbolic_trace(model).graph, one entry per node:
                          {"name", "op", "target", "args", "kwargs", "inputs"} and,
                          for call_module, "module_type" (see graph_nodes())
  fx_prepared_graph.json  the same for the graph prepare_fx returns
  fx_observers.json       every activation_post_process_* call_module node of the
                          prepared graph, in graph order, after calibration:
                          {"name", "module", "same_module_as", "input", "observer",
                          "scale", "zero_point", "dtype", "qscheme", "min_val",
                          "max_val"}; qparams from the observer's calculate_qparams()
  fx_int8_logits.pt       {"tensor": convert_fx(prepared)(eval_input)}
  fx_int8_scripted.pt     torch.jit.save(torch.jit.freeze(torch.jit.script(converted)))
  summary.json            {"model", "size", "classes", "calibration", "batch",
                          "scripted", "traced", "fx_trace", "fx_quantize",
                          "fx_int8_scripted": "ok" or a short error,
                          "sqnr_fx_int8_vs_fp32_db": float or null,
                          "scripted_vs_fp32_max_abs", "traced_vs_fp32_max_abs":
                          max |difference| between the in-memory scripted / traced
                          module and eager on eval_input[:2], or null}

PTQ uses the onednn engine and get_default_qconfig_mapping("onednn"), the
calibration tensor in order in batches of --batch. A failing step records its
error in summary.json and the rest still runs. Exit status: 0, or 2 for an
unknown model name, 1 when scripting and tracing both fail.
"""
import os

# oneDNN 2.6.3 (the one in Debian's torch 1.13) has wrong AMX int8 kernels for
# grouped and depthwise convolutions: they return garbage and sometimes corrupt the
# heap. Capping the ISA at AVX512_CORE_VNNI keeps oneDNN off AMX. oneDNN reads the
# variable when it first dispatches, so it has to be in the environment before torch
# is imported. A caller's own ONEDNN_MAX_CPU_ISA (or the older DNNL_ spelling) wins.
if "DNNL_MAX_CPU_ISA" not in os.environ:
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")

import sys  # noqa: E402

# torch.jit.save writes some class constants in set order, which follows Python's
# string hashing: without a fixed PYTHONHASHSEED the .pt archives differ byte for
# byte from run to run (the tensors never do). Re-exec once with the seed fixed.
if __name__ == "__main__" and "PYTHONHASHSEED" not in os.environ:
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
import torch.fx  # noqa: E402
import torchvision  # noqa: E402
from torch.ao.quantization import get_default_qconfig_mapping  # noqa: E402
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: E402

MODEL_SEED = 0
CALIBRATION_SEED = 1
EVAL_SEED = 2
EVAL_BATCH = 4
BN_PASSES = 3
CHECK_BATCH = 2

OUTPUTS = ("scripted.pt", "traced.pt", "state_dict.pt", "calibration.pt", "eval_input.pt",
           "fp32_logits.pt", "fx_graph.json", "fx_prepared_graph.json", "fx_observers.json",
           "fx_int8_logits.pt", "fx_int8_scripted.pt", "summary.json")

# Constructor arguments beyond weights=None and num_classes.
MODEL_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}


def short_error(e):
    """The exception type and the first sentence of its first line."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if len(first) > 120 and ". " in first:
        first = first[:first.index(". ") + 1]
    return f"{type(e).__name__}: {first}"[:300]


def log(message):
    print(f"[torchscript_reference] {message}", file=sys.stderr, flush=True)


def classification_models():
    if hasattr(torchvision.models, "list_models"):
        return set(torchvision.models.list_models(module=torchvision.models))
    return None


def build_model(name, classes, size):
    known = classification_models()
    builder = getattr(torchvision.models, name, None)
    if (known is not None and name not in known) or not callable(builder):
        raise KeyError(f"unknown torchvision classification model {name!r}")
    kwargs = dict(MODEL_KWARGS.get(name, {}))
    if name.startswith("vit_"):
        kwargs["image_size"] = size
    torch.manual_seed(MODEL_SEED)
    return builder(weights=None, num_classes=classes, **kwargs)


def make_inputs(size, calibration):
    calib = torch.randn(calibration, 3, size, size,
                        generator=torch.Generator().manual_seed(CALIBRATION_SEED))
    eval_input = torch.randn(EVAL_BATCH, 3, size, size,
                             generator=torch.Generator().manual_seed(EVAL_SEED))
    return calib, eval_input


def settle_batchnorm(model, calib):
    """Train-mode passes so BatchNorm's running statistics move away from 0/1."""
    model.train()
    with torch.no_grad():
        for _ in range(BN_PASSES):
            model(calib)
    model.eval()


def first_tensor(output):
    """The logits: scripted googlenet/inception return a namedtuple."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


def save_tensor(path, tensor):
    torch.save({"tensor": tensor.detach().contiguous()}, path)


def max_abs(a, b):
    return float((a - b).abs().max())


def check_batch(module, eval_input, ref):
    """max |module - eager| on the first CHECK_BATCH eval images (not batch 1, which
    traced.pt was traced with)."""
    with torch.no_grad():
        return max_abs(first_tensor(module(eval_input[:CHECK_BATCH])), ref[:CHECK_BATCH])


def script_model(model, eval_input, ref, out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(model)
    torch.jit.save(scripted, os.path.join(out, "scripted.pt"))
    return check_batch(scripted, eval_input, ref)


def trace_model(model, eval_input, ref, out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # check_trace would re-run the model twice at batch 1; check_batch below
        # compares with eager at batch 2 instead.
        traced = torch.jit.trace(model, eval_input[:1], check_trace=False)
    torch.jit.save(traced, os.path.join(out, "traced.pt"))
    return check_batch(traced, eval_input, ref)


def target_name(node):
    """call_module: the module path; call_function: e.g. operator.add, torch.flatten,
    torch.nn.functional.relu, getattr; call_method: the method name."""
    if node.op != "call_function":
        return str(node.target)
    name = torch.fx.node._get_qualified_name(node.target)
    if name.startswith("_operator."):
        name = "operator." + name[len("_operator."):]
    return name


def format_arg(arg):
    # Node.__repr__ is its name, so nested lists/tuples of Nodes print as [a, b].
    return arg.name if isinstance(arg, torch.fx.Node) else repr(arg)


def graph_nodes(graph_module):
    nodes = []
    for node in graph_module.graph.nodes:
        entry = {
            "name": node.name,
            "op": node.op,
            "target": target_name(node),
            "args": [format_arg(a) for a in node.args],
            "kwargs": {k: format_arg(v) for k, v in node.kwargs.items()},
            "inputs": [n.name for n in node.all_input_nodes],
        }
        if node.op == "call_module":
            entry["module_type"] = type(graph_module.get_submodule(node.target)).__name__
        nodes.append(entry)
    return nodes


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def fx_trace(model, out):
    traced = torch.fx.symbolic_trace(model)
    write_json(os.path.join(out, "fx_graph.json"), graph_nodes(traced))


def observer_entries(prepared):
    entries, first_with = [], {}
    for node in prepared.graph.nodes:
        if node.op != "call_module" or not str(node.target).startswith("activation_post_process_"):
            continue
        observer = prepared.get_submodule(node.target)
        entry = {
            "name": node.name,
            "module": str(node.target),
            "same_module_as": first_with.setdefault(id(observer), node.name),
            "input": format_arg(node.args[0]),
            "observer": type(observer).__name__,
        }
        try:
            scale, zero_point = observer.calculate_qparams()
            entry["scale"] = float(scale)
            entry["zero_point"] = int(zero_point)
        except Exception as e:  # e.g. an observer type without qparams
            entry["scale"], entry["zero_point"] = None, None
            entry["error"] = short_error(e)
        entry["dtype"] = str(getattr(observer, "dtype", "")).replace("torch.", "")
        entry["qscheme"] = str(getattr(observer, "qscheme", ""))
        for key in ("min_val", "max_val"):
            value = getattr(observer, key, None)
            entry[key] = float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else None
        entries.append(entry)
    return entries


def sqnr_db(ref, test):
    noise = float((ref - test).pow(2).sum())
    signal = float(ref.pow(2).sum())
    if noise == 0.0:
        return None
    value = 10.0 * math.log10(signal / noise)
    return value if math.isfinite(value) else None


def fx_quantize(model, calib, eval_input, batch, out):
    """prepare_fx, calibrate, convert_fx; returns the converted module and its logits."""
    torch.backends.quantized.engine = "onednn"
    qmap = get_default_qconfig_mapping("onednn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model), qmap, example_inputs=(eval_input[:1],))
    write_json(os.path.join(out, "fx_prepared_graph.json"), graph_nodes(prepared))
    with torch.no_grad():
        for start in range(0, calib.shape[0], batch):
            prepared(calib[start:start + batch])
    write_json(os.path.join(out, "fx_observers.json"), observer_entries(prepared))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_fx(prepared)
    with torch.no_grad():
        int8 = first_tensor(converted(eval_input))
    save_tensor(os.path.join(out, "fx_int8_logits.pt"), int8)
    return converted, int8


def script_converted(converted, out):
    # FX copies the float forward's return annotation onto the output node, and
    # scripted googlenet/inception then insist on returning a GoogLeNetOutputs /
    # InceptionOutputs although the converted graph returns a Tensor.
    for node in converted.graph.nodes:
        if node.op == "output":
            node.type = None
    converted.recompile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.script(converted))
    torch.jit.save(frozen, os.path.join(out, "fx_int8_scripted.pt"))


def run_step(summary, key, fn, *args):
    """Runs fn, records "ok" or its short error under summary[key]; returns fn's value."""
    start = time.time()
    try:
        value = fn(*args)
        summary[key] = "ok"
    except Exception as e:
        value = None
        summary[key] = short_error(e)
    log(f"{key}: {summary[key]} ({time.time() - start:.2f}s)")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("outdir")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--calibration", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args(argv)

    start = time.time()
    try:
        model = build_model(args.model, args.classes, args.size)
    except Exception as e:
        print(f"torchscript_reference: {short_error(e)}", file=sys.stderr)
        return 2
    out = args.outdir
    os.makedirs(out, exist_ok=True)
    for name in OUTPUTS:  # no stale file from an earlier run may pass for this one's
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))

    calib, eval_input = make_inputs(args.size, args.calibration)
    settle_batchnorm(model, calib)
    with torch.no_grad():
        ref = first_tensor(model(eval_input))
    save_tensor(os.path.join(out, "calibration.pt"), calib)
    save_tensor(os.path.join(out, "eval_input.pt"), eval_input)
    save_tensor(os.path.join(out, "fp32_logits.pt"), ref)
    torch.save(model.state_dict(), os.path.join(out, "state_dict.pt"))

    summary = {"model": args.model, "size": args.size, "classes": args.classes,
               "calibration": args.calibration, "batch": args.batch}
    summary["scripted_vs_fp32_max_abs"] = run_step(
        summary, "scripted", script_model, model, eval_input, ref, out)
    summary["traced_vs_fp32_max_abs"] = run_step(
        summary, "traced", trace_model, model, eval_input, ref, out)
    run_step(summary, "fx_trace", fx_trace, model, out)
    quantized = run_step(summary, "fx_quantize", fx_quantize, model, calib, eval_input,
                         args.batch, out)
    if quantized is not None:
        converted, int8 = quantized
        summary["sqnr_fx_int8_vs_fp32_db"] = sqnr_db(ref, int8)
        run_step(summary, "fx_int8_scripted", script_converted, converted, out)
    else:
        summary["sqnr_fx_int8_vs_fp32_db"] = None
        summary["fx_int8_scripted"] = "skipped: fx_quantize failed"

    order = ["model", "size", "classes", "calibration", "batch", "scripted", "traced",
             "fx_trace", "fx_quantize", "fx_int8_scripted", "sqnr_fx_int8_vs_fp32_db",
             "scripted_vs_fp32_max_abs", "traced_vs_fp32_max_abs"]
    write_json(os.path.join(out, "summary.json"), {k: summary[k] for k in order})
    log(f"{args.model}: done in {time.time() - start:.2f}s")
    if summary["scripted"] != "ok" and summary["traced"] != "ok":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
