#pragma once
// How each operation takes part in quantization: one declarative table that
// prepare and convert both read, instead of conditionals spread over passes.

#include <string>

namespace qb {

/// What happens at an operation's output when it is quantized.
enum class OutputRule {
  /// A new observer measures the output (conv, linear, add, cat, dropout).
  kNewObserver,
  /// The output keeps the input's qparams; PyTorch inserts an observer node that
  /// shares the input's observer (max-pool, average pool, flatten, relu, relu6).
  kShareInputObserver,
};

struct OpRule {
  OutputRule output;
  /// The kind whose qconfig applies: fused modules take their first op's.
  const char* qconfig_kind;
};

/// The rule for a module kind ("ConvReLU2d") or function name ("add"); nullptr
/// for operations that always run in fp32.
const OpRule* op_rule(const std::string& kind);

}  // namespace qb
