#include "quant/module.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <stdexcept>

namespace qb {

namespace {
TensorSlot* find_slot(std::vector<TensorSlot>& slots, const std::string& name) {
  for (auto& slot : slots) {
    if (slot.name == name) return &slot;
  }
  return nullptr;
}
}  // namespace

const at::Tensor& Module::tensor(const std::string& name) const {
  for (const auto& slot : tensors_) {
    if (slot.name == name) return slot.tensor;
  }
  throw std::out_of_range(kind() + " has no tensor '" + name + "'");
}

void Module::set_tensor(const std::string& name, at::Tensor value) {
  TensorSlot* slot = find_slot(tensors_, name);
  if (!slot) throw std::out_of_range(kind() + " has no tensor '" + name + "'");
  slot->tensor = std::move(value);
}

void Module::register_parameter(std::string name, at::Tensor value) {
  tensors_.push_back({std::move(name), std::move(value), true});
}

void Module::register_buffer(std::string name, at::Tensor value) {
  tensors_.push_back({std::move(name), std::move(value), false});
}

void Module::clone_tensors_in_place() {
  for (auto& slot : tensors_) {
    if (slot.tensor.defined()) slot.tensor = slot.tensor.detach().clone();
  }
}

bool can_overwrite(const at::Tensor& t) {
  return !at::GradMode::is_enabled() && t.defined() && !t.is_quantized() && t.use_count() == 1 &&
         t.storage().use_count() == 1;
}

const at::Tensor& Module::only_input(const std::vector<at::Tensor>& inputs) const {
  if (inputs.size() != 1) {
    throw std::invalid_argument(kind() + " takes 1 input, got " + std::to_string(inputs.size()));
  }
  return inputs[0];
}

}  // namespace qb
