#include "quant/stubs.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <stdexcept>

namespace qb {

at::Tensor QuantStub::forward(const std::vector<at::Tensor>& inputs) { return only_input(inputs); }

at::Tensor DeQuantStub::forward(const std::vector<at::Tensor>& inputs) {
  return only_input(inputs);
}

const std::vector<std::string>& float_functional_methods() {
  // add_scalar and mul_scalar are left out: they take a Python number, not a graph value.
  static const std::vector<std::string> methods = {"add", "cat", "mul", "add_relu"};
  return methods;
}

FloatFunctional::FloatFunctional(std::string method, int64_t dim)
    : method_(std::move(method)), dim_(dim) {
  const auto& known = float_functional_methods();
  if (std::find(known.begin(), known.end(), method_) == known.end()) {
    std::string list;
    for (const auto& name : known) list += (list.empty() ? "" : ", ") + name;
    throw std::invalid_argument("FloatFunctional has no method '" + method_ + "' (known: " + list +
                                ")");
  }
}

at::Tensor FloatFunctional::forward(const std::vector<at::Tensor>& inputs) {
  if (method_ == "cat") return at::cat(inputs, dim_);
  if (inputs.size() != 2) {
    throw std::invalid_argument("FloatFunctional." + method_ + " takes 2 inputs, got " +
                                std::to_string(inputs.size()));
  }
  if (method_ == "mul") return at::mul(inputs[0], inputs[1]);
  at::Tensor sum = at::add(inputs[0], inputs[1]);
  return method_ == "add_relu" ? at::relu(sum) : sum;
}

}  // namespace qb
