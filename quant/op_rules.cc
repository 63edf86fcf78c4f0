#include "quant/op_rules.h"

#include <map>

namespace qb {

const OpRule* op_rule(const std::string& kind) {
  // The placement prepare_fx uses in PyTorch 1.13 for its default backend config.
  static const std::map<std::string, OpRule> table = {
      {"Conv2d", {OutputRule::kNewObserver, "Conv2d"}},
      {"ConvReLU2d", {OutputRule::kNewObserver, "Conv2d"}},
      {"Linear", {OutputRule::kNewObserver, "Linear"}},
      {"LinearReLU", {OutputRule::kNewObserver, "Linear"}},
      {"add", {OutputRule::kNewObserver, "add"}},
      {"cat", {OutputRule::kNewObserver, "cat"}},
      // Eval-mode dropout is the identity, but 1.13 still gives it its own observer.
      {"Dropout", {OutputRule::kNewObserver, "Dropout"}},
      {"MaxPool2d", {OutputRule::kShareInputObserver, "MaxPool2d"}},
      {"AdaptiveAvgPool2d", {OutputRule::kShareInputObserver, "AdaptiveAvgPool2d"}},
      {"adaptive_avg_pool2d", {OutputRule::kShareInputObserver, "adaptive_avg_pool2d"}},
      {"flatten", {OutputRule::kShareInputObserver, "flatten"}},
      {"ReLU", {OutputRule::kShareInputObserver, "ReLU"}},
      {"relu", {OutputRule::kShareInputObserver, "relu"}},
      {"ReLU6", {OutputRule::kShareInputObserver, "ReLU6"}},
      {"Identity", {OutputRule::kShareInputObserver, "Identity"}},
  };
  auto it = table.find(kind);
  return it == table.end() ? nullptr : &it->second;
}

}  // namespace qb
