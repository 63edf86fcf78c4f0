#pragma once
// The unit of parameters and computation in a GraphModule: the C++ counterpart
// of a leaf torch.nn.Module (Conv2d, BatchNorm2d, ...).

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quant/graph.h"

namespace qb {

/// One named tensor of a module, in registration order (parameters first, as PyTorch does).
struct TensorSlot {
  std::string name;
  at::Tensor tensor;
  bool is_parameter;
};

/// A module's constructor arguments by name ("stride" -> 2): with kind() and the tensors,
/// what it takes to rebuild the module (quant/serialize.h).
using ModuleConfig = std::vector<std::pair<std::string, Attr>>;

/// A layer: named tensors plus a forward function over ATen tensors.
class Module {
 public:
  virtual ~Module() = default;

  /// PyTorch's class name ("Conv2d"); qconfig `object_type` entries match it.
  virtual std::string kind() const = 0;
  /// Runs the layer; most layers take exactly one input.
  virtual at::Tensor forward(const std::vector<at::Tensor>& inputs) = 0;
  /// The arguments PyTorch prints inside `Kind(...)`.
  virtual std::string extra_repr() const { return ""; }
  /// The constructor arguments; modules that take none keep this empty default.
  virtual ModuleConfig config() const { return {}; }
  /// A deep copy: tensors are cloned, so the copy can be changed freely.
  virtual std::unique_ptr<Module> clone() const = 0;

  /// Parameters then buffers, in PyTorch's state_dict order.
  const std::vector<TensorSlot>& tensors() const { return tensors_; }
  /// The tensor called `name`; throws std::out_of_range naming it when absent.
  const at::Tensor& tensor(const std::string& name) const;
  /// Replaces the tensor called `name` (same rules as `tensor`).
  void set_tensor(const std::string& name, at::Tensor value);

  /// Training mode changes BatchNorm and Dropout, as nn.Module.train() does.
  bool training() const { return training_; }
  void set_training(bool on) { training_ = on; }

  /// `Kind(extra_repr)`, as PyTorch prints a module.
  std::string repr() const { return kind() + "(" + extra_repr() + ")"; }

 protected:
  void register_parameter(std::string name, at::Tensor value);
  void register_buffer(std::string name, at::Tensor value);
  /// For clone(): replaces every tensor by an independent copy.
  void clone_tensors_in_place();
  /// Single-input layers check their arity through this.
  const at::Tensor& only_input(const std::vector<at::Tensor>& inputs) const;

 private:
  std::vector<TensorSlot> tensors_;
  bool training_ = false;
};

/// Whether an op may write into `t` in place: no gradient is being recorded and
/// the caller holds the only reference to it and to its storage (the interpreter
/// hands over values at their last use), so nobody else can observe the change.
bool can_overwrite(const at::Tensor& t);

/// Base of concrete modules: supplies clone() by copying the object and its tensors.
template <typename Derived>
class ModuleBase : public Module {
 public:
  std::unique_ptr<Module> clone() const override {
    auto copy = std::make_unique<Derived>(static_cast<const Derived&>(*this));
    copy->clone_tensors_in_place();
    return copy;
  }
};

}  // namespace qb
