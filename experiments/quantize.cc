#include "experiments/quantize.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "base/read_file.h"
#include "models/checkpoint.h"
#include "models/torchscript_export.h"
#include "models/torchscript_import.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/fuse.h"
#include "quant/prepare.h"
#include "quant/qconfig.h"
#include "quant/qconfig_mapping.h"
#include "quant/quantized_ops.h"

namespace qb {

namespace {


void require_file(const std::string& flag, const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw UsageError(flag + " " + path + ": no such file");
  }
}

// The calibration tensor: what torch.save(tensor, path) wrote, float, one example per row.
at::Tensor read_calibration(const std::string& path) {
  std::string bytes = read_file(path).value_or("");
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const c10::Error& e) {
    // LibTorch's unpickler reads a tensor but not every dict Python pickles; ours reads dicts.
    std::string keys;
    try {
      for (const auto& [key, tensor] : read_state_dict(path)) keys += (keys.empty() ? "" : ", ") + key;
    } catch (const CheckpointError&) {
      throw UsageError("--calibration " + path + ": not a tensor saved with torch.save: " + archive_error(e));
    }
    throw UsageError("--calibration " + path + ": holds a dict (" + keys +
                     "), not a tensor; save the images themselves: torch.save(images, path)");
  }
  if (!value.isTensor()) {
    throw UsageError("--calibration " + path + ": holds a " + value.tagKind() +
                     ", not a tensor; save one with torch.save(images, path), images of shape "
                     "(N, C, H, W)");
  }
  at::Tensor tensor = value.toTensor();
  if (!at::isFloatingType(tensor.scalar_type()) || tensor.dim() < 2 || tensor.size(0) == 0) {
    throw UsageError("--calibration " + path + ": a " + std::string(c10::toString(tensor.scalar_type())) +
                     " tensor of shape " + c10::str(tensor.sizes()) +
                     "; expected a float tensor (N, C, H, W) with N >= 1");
  }
  return tensor.to(at::kFloat).contiguous();
}

QConfigMapping read_mapping(const QuantizeOptions& o) {
  QConfigMapping mapping;
  if (!o.mapping.empty()) {
    require_file("--mapping", o.mapping);
    mapping = parse_qconfig_mapping(read_file(o.mapping).value_or(""), o.mapping);
    if (mapping.global()) {
      throw UsageError("--mapping " + o.mapping +
                       ": has a [global] qconfig; the global one comes from --engine, "
                       "--observer and --weights");
    }
  }
  QConfig global = default_qconfig(o.engine);
  if (!o.observer.empty() || !o.weights.empty()) {
    const bool per_channel = global.weight.qscheme == QScheme::kPerChannelSymmetric ||
                             global.weight.qscheme == QScheme::kPerChannelAffine;
    try {
      global = configured_qconfig(o.engine, o.observer.empty() ? global.activation.kind : o.observer,
                                  o.weights.empty() ? (per_channel ? "per_channel" : "per_tensor")
                                                    : o.weights);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string(o.observer.empty() ? "--weights" : "--observer") + ": " + e.what());
    }
  }
  mapping.set_global(global);
  return mapping;
}

int64_t file_size(const std::string& path) {
  return static_cast<int64_t>(std::filesystem::file_size(path));
}

class Stopwatch {
 public:
  double lap() {
    auto now = std::chrono::steady_clock::now();
    double seconds = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return seconds;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace

std::string quantize_usage() {
  return "usage: quantize --model FP32.pt --calibration CALIB.pt --output INT8.pt\n"
         "                [--calibration-batch-size N] [--engine onednn|qnnpack]\n"
         "                [--observer histogram|minmax|moving_average_minmax|percentile|entropy]\n"
         "                [--weights per_channel|per_tensor] [--mapping FILE.toml]\n"
         "FP32.pt: a TorchScript file (torch.jit.save of torch.jit.script or torch.jit.trace)\n"
         "CALIB.pt: torch.save(images, path), a float tensor (N, C, H, W), used in order\n"
         "INT8.pt: the int8 model as TorchScript; in Python, set\n"
         "         torch.backends.quantized.engine to the engine, then torch.jit.load it\n";
}

QuantizeOptions parse_quantize_arguments(const std::vector<std::string>& arguments) {
  QuantizeOptions o;
  std::map<std::string, std::string*> strings = {
      {"--model", &o.model},     {"--calibration", &o.calibration}, {"--output", &o.output},
      {"--engine", &o.engine},   {"--observer", &o.observer},       {"--weights", &o.weights},
      {"--mapping", &o.mapping}};
  for (size_t i = 0; i < arguments.size(); ++i) {
    std::string flag = arguments[i];
    std::string value;
    bool inline_value = false;
    if (auto equals = flag.find('='); flag.rfind("--", 0) == 0 && equals != std::string::npos) {
      value = flag.substr(equals + 1);
      flag = flag.substr(0, equals);
      inline_value = true;
    }
    const bool known = strings.count(flag) || flag == "--calibration-batch-size";
    if (!known) throw UsageError("unknown argument '" + arguments[i] + "'");
    if (!inline_value) {
      if (i + 1 >= arguments.size()) throw UsageError(flag + " needs a value");
      value = arguments[++i];
    }
    if (flag == "--calibration-batch-size") {
      size_t end = 0;
      long long n = 0;
      try {
        n = std::stoll(value, &end);
      } catch (const std::exception&) {
        end = 0;
      }
      if (end != value.size() || n < 1) {
        throw UsageError("--calibration-batch-size: '" + value + "' is not a whole number >= 1");
      }
      o.calibration_batch_size = n;
    } else {
      *strings.at(flag) = value;
    }
  }
  for (const auto& [flag, field] : {std::pair<const char*, std::string*>{"--model", &o.model},
                                    {"--calibration", &o.calibration},
                                    {"--output", &o.output}}) {
    if (field->empty()) throw UsageError(std::string(flag) + " is required");
  }
  return o;
}

QuantizeReport quantize(const QuantizeOptions& o,
                        const std::function<void(int64_t, int64_t)>& progress) {
  // Everything that can be checked without computing, first.
  require_file("--model", o.model);
  require_file("--calibration", o.calibration);
  const std::filesystem::path output_dir = std::filesystem::absolute(o.output).parent_path();
  if (!std::filesystem::is_directory(output_dir)) {
    throw UsageError("--output " + o.output + ": folder " + output_dir.string() + " does not exist");
  }
  try {
    select_engine(o.engine);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--engine: ") + e.what());
  }
  const QConfigMapping mapping = read_mapping(o);
  const at::Tensor images = read_calibration(o.calibration);

  QuantizeReport report;
  Stopwatch clock;
  at::NoGradGuard no_grad;
  GraphModule model = import_torchscript(o.model);
  report.step_seconds.emplace_back("import", clock.lap());

  GraphModule prepared = prepare(model, mapping);
  report.step_seconds.emplace_back("prepare", clock.lap());

  std::vector<at::Tensor> batches;
  for (int64_t start = 0; start < images.size(0); start += o.calibration_batch_size) {
    batches.push_back(images.slice(0, start, std::min(images.size(0), start + o.calibration_batch_size)));
  }
  progress(0, images.size(0));
  report.calibration_examples = calibrate(prepared, batches_of(batches),
                                          {0, [&](int64_t done) { progress(done, images.size(0)); }});
  report.calibration_batches = static_cast<int64_t>(batches.size());
  report.step_seconds.emplace_back("calibrate", clock.lap());

  ConvertOptions convert_options;
  convert_options.engine = o.engine;
  GraphModule converted = convert(prepared, convert_options);
  report.step_seconds.emplace_back("convert", clock.lap());

  report.precisions = count_precisions(node_precisions(converted));
  const size_t sqnr_batches = std::min<size_t>(2, batches.size());
  report.sqnr_batches = static_cast<int64_t>(sqnr_batches);
  report.layer_sqnr = layer_sqnr(fuse(model, mapping), converted,
                                 std::vector<at::Tensor>(batches.begin(), batches.begin() + sqnr_batches));
  report.step_seconds.emplace_back("per-layer SQNR", clock.lap());

  export_torchscript(converted, o.output);
  report.step_seconds.emplace_back("export", clock.lap());
  report.input_bytes = file_size(o.model);
  report.output_bytes = file_size(o.output);
  return report;
}

std::string format_report(const QuantizeOptions& o, const QuantizeReport& r) {
  std::ostringstream out;
  out << std::fixed;
  out << "calibrated on " << r.calibration_examples << " examples in " << r.calibration_batches
      << " batches of up to " << o.calibration_batch_size << " (" << o.calibration << ", in order)\n";
  out << "nodes: " << r.precisions.int8 << " int8, " << r.precisions.fp32 << " fp32\n";
  out << "per-layer SQNR against fp32 on the first " << r.sqnr_batches
      << " calibration batches (dB):\n";
  for (const LayerSqnr& layer : r.layer_sqnr) {
    out << "  " << std::left << std::setw(32) << layer.name << " " << std::right << std::setw(7)
        << std::setprecision(1) << layer.sqnr_db << "\n";
  }
  out << std::setprecision(3) << "size: " << r.input_bytes / 1e6 << " MB (" << o.model << ") -> "
      << r.output_bytes / 1e6 << " MB (" << o.output << "), "
      << std::setprecision(2) << static_cast<double>(r.input_bytes) / static_cast<double>(r.output_bytes)
      << "x smaller\n";
  out << "time:";
  double total = 0;
  for (const auto& [step, seconds] : r.step_seconds) {
    out << " " << step << " " << std::setprecision(2) << seconds << " s,";
    total += seconds;
  }
  out << " total " << std::setprecision(2) << total << " s\n";
  out << "wrote " << o.output << ": TorchScript; run it in Python with\n"
      << "  torch.backends.quantized.engine = \"" << o.engine << "\"\n"
      << "  model = torch.jit.load(\"" << o.output << "\")\n";
  return out.str();
}

}  // namespace qb
