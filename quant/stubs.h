#pragma once
// The markers an eager-mode quantizable model carries (torch.ao.quantization.stubs and
// torch.ao.nn.quantized.FloatFunctional). In fp32 they compute what the plain model
// computes; they tell prepare_eager and convert_eager (eager.h) where int8 starts and
// ends, and which functional ops may run quantized.

#include <cstdint>
#include <string>
#include <vector>

#include "quant/module.h"

namespace qb {

/// torch.ao.quantization.QuantStub: the identity; convert_eager makes it a Quantize.
class QuantStub : public ModuleBase<QuantStub> {
 public:
  std::string kind() const override { return "QuantStub"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
};

/// torch.ao.quantization.DeQuantStub: the identity; convert_eager makes it a DeQuantize.
class DeQuantStub : public ModuleBase<DeQuantStub> {
 public:
  std::string kind() const override { return "DeQuantStub"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
};

/// torch.ao.nn.quantized.FloatFunctional bound to the one method its call sites use.
/// PyTorch picks the method per call (`self.add_relu.add_relu(out, identity)`); a node
/// here has no method argument, so the module carries it. PyTorch's repr also lists an
/// `(activation_post_process): Identity()` child, which a flat module table has no
/// place for: prepare_eager registers the real observer at `<path>.activation_post_process`.
class FloatFunctional : public ModuleBase<FloatFunctional> {
 public:
  /// `method`: add, add_relu, mul or cat (`dim` is cat's); std::invalid_argument otherwise.
  explicit FloatFunctional(std::string method, int64_t dim = 0);
  std::string kind() const override { return "FloatFunctional"; }
  at::Tensor forward(const std::vector<at::Tensor>& inputs) override;
  ModuleConfig config() const override { return {{"method", method_}, {"dim", dim_}}; }
  const std::string& method() const { return method_; }
  int64_t dim() const { return dim_; }

 private:
  std::string method_;
  int64_t dim_;
};

/// The methods FloatFunctional supports, in the order PyTorch documents them.
const std::vector<std::string>& float_functional_methods();

}  // namespace qb
