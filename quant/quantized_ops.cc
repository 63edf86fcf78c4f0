#include "quant/quantized_ops.h"

#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <stdexcept>

namespace qb {

c10::IValue call_quantized_op(const std::string& name, const std::string& overload,
                              std::vector<c10::IValue> arguments) {
  c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(),
                                                                          overload.c_str());
  op.callBoxed(&arguments);
  return arguments.at(0);
}

namespace {
// LibTorch says "onednn" for ONEDNN and "x86"/"fbgemm"/"qnnpack" for the others.
std::string engine_name(at::QEngine engine) {
  std::string name = c10::toString(engine);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}
}  // namespace

std::vector<std::string> available_engines() {
  std::vector<std::string> names;
  for (at::QEngine engine : at::globalContext().supportedQEngines()) {
    if (engine != at::QEngine::NoQEngine) names.push_back(engine_name(engine));
  }
  return names;
}

void select_engine(const std::string& engine) {
  for (at::QEngine candidate : at::globalContext().supportedQEngines()) {
    if (candidate != at::QEngine::NoQEngine && engine_name(candidate) == engine) {
      at::globalContext().setQEngine(candidate);
      return;
    }
  }
  std::string available;
  for (const auto& name : available_engines()) available += (available.empty() ? "" : ", ") + name;
  throw std::invalid_argument("quantized engine '" + engine +
                              "' is not available in this LibTorch build (available: " +
                              available + ")");
}

std::string current_engine() { return engine_name(at::globalContext().qEngine()); }

}  // namespace qb
