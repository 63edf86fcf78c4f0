#include "quant/interpreter.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <unordered_map>

namespace qb {

Interpreter::Interpreter(const GraphModule& gm) : graph_(gm.graph) {
  lint(gm);
  std::unordered_map<std::string, int> slot_of;
  std::unordered_map<int, size_t> last_reader;  // slot -> index of the last step reading it
  for (const Node& node : graph_.nodes()) {
    switch (node.op) {
      case NodeOp::kPlaceholder:
        slot_of[node.name] = num_slots_;
        input_slots_.push_back(num_slots_++);
        break;
      case NodeOp::kOutput:
        for (const auto& value : node.inputs) output_slots_.push_back(slot_of.at(value));
        break;
      case NodeOp::kCallModule:
      case NodeOp::kCallFunction: {
        Step step{&node, nullptr, nullptr, {}, num_slots_++, {}, {}};
        if (node.op == NodeOp::kCallModule) {
          step.module = gm.module_ptr(node.target);
        } else {
          const OpSpec& spec = op(node.target);
          if (spec.form != OpForm::kFunction) {
            throw GraphError("node '" + node.name + "' calls '" + node.target + "', which is no function");
          }
          step.function = &spec.function;
        }
        for (const auto& value : node.inputs) {
          int slot = slot_of.at(value);
          step.input_slots.push_back(slot);
          last_reader[slot] = steps_.size();
        }
        slot_of[node.name] = step.output_slot;
        steps_.push_back(std::move(step));
        break;
      }
    }
  }
  std::vector<bool> is_output(num_slots_, false);
  for (int slot : output_slots_) is_output[slot] = true;
  for (const auto& [slot, step_index] : last_reader) {
    if (!is_output[slot]) steps_[step_index].release_after.push_back(slot);
  }
  // A value read for the last time, once, by a step is moved into its arguments,
  // which lets ops such as relu and add reuse its memory (see can_overwrite).
  for (Step& step : steps_) {
    for (int slot : step.input_slots) {
      bool last_use = std::count(step.release_after.begin(), step.release_after.end(), slot) > 0;
      bool read_once = std::count(step.input_slots.begin(), step.input_slots.end(), slot) == 1;
      step.hand_over.push_back(last_use && read_once);
    }
  }
}

std::vector<at::Tensor> Interpreter::run(const std::vector<at::Tensor>& inputs) const {
  return run_steps(inputs, nullptr);
}

std::vector<at::Tensor> Interpreter::run(const std::vector<at::Tensor>& inputs,
                                         const NodeHook& hook) const {
  return run_steps(inputs, &hook);
}

std::vector<at::Tensor> Interpreter::run_steps(const std::vector<at::Tensor>& inputs,
                                               const NodeHook* hook) const {
  if (inputs.size() != input_slots_.size()) {
    throw GraphError("the graph takes " + std::to_string(input_slots_.size()) +
                     " inputs, got " + std::to_string(inputs.size()));
  }
  std::vector<at::Tensor> slots(num_slots_);
  for (size_t i = 0; i < inputs.size(); ++i) slots[input_slots_[i]] = inputs[i];

  std::vector<at::Tensor> args;
  for (const Step& step : steps_) {
    args.clear();
    for (size_t i = 0; i < step.input_slots.size(); ++i) {
      at::Tensor& value = slots[step.input_slots[i]];
      args.push_back(step.hand_over[i] ? std::move(value) : value);
    }
    try {
      slots[step.output_slot] =
          step.module ? step.module->forward(args) : (*step.function)(args, *step.node);
    } catch (const c10::Error& e) {
      throw GraphError("node '" + step.node->name + "' (" + to_string(step.node->op) + " " +
                       step.node->target + "): " + e.what_without_backtrace());
    } catch (const GraphError&) {
      throw;
    } catch (const std::exception& e) {
      throw GraphError("node '" + step.node->name + "' (" + to_string(step.node->op) + " " +
                       step.node->target + "): " + e.what());
    }
    if (hook) (*hook)(*step.node, slots[step.output_slot]);
    for (int slot : step.release_after) slots[slot].reset();
  }

  std::vector<at::Tensor> outputs;
  for (int slot : output_slots_) outputs.push_back(slots[slot]);
  return outputs;
}

at::Tensor Interpreter::run(const at::Tensor& input) const {
  std::vector<at::Tensor> outputs = run(std::vector<at::Tensor>{input});
  if (outputs.size() != 1) {
    throw GraphError("the graph returns " + std::to_string(outputs.size()) +
                     " values; use the vector form of run()");
  }
  return outputs[0];
}

}  // namespace qb
