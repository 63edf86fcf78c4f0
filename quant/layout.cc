#include "quant/layout.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "quant/modules.h"

namespace qb {

GraphModule to_channels_last(const GraphModule& gm) {
  GraphModule out = gm;  // modules stay shared until replaced below
  for (const auto& [path, module] : gm.modules()) {
    if (!dynamic_cast<const Conv2d*>(module.get())) continue;
    std::shared_ptr<Module> copy = module->clone();
    copy->set_tensor("weight", copy->tensor("weight").contiguous(at::MemoryFormat::ChannelsLast));
    out.replace_module(path, copy);
  }
  for (const std::string& input : gm.graph.inputs()) {
    // An int8 model's input goes straight into a quantize (graph mode's function, eager
    // mode's Quantize module): changing the layout after it moves a quarter of the bytes.
    const std::vector<std::string> users = out.graph.users(input);
    const bool only_quantized =
        !users.empty() && std::all_of(users.begin(), users.end(), [&](const std::string& user) {
          const Node& node = out.graph.node(user);
          return (node.op == NodeOp::kCallFunction && node.target == "quantize_per_tensor") ||
                 (node.op == NodeOp::kCallModule && out.module(node.target).kind() == "Quantize");
        });
    for (const std::string& value : only_quantized ? users : std::vector<std::string>{input}) {
      Node convert;
      convert.name = value + "_channels_last";
      convert.op = NodeOp::kCallFunction;
      convert.target = "contiguous";
      convert.inputs = {value};
      convert.attrs = {{"memory_format", std::string("channels_last")}};
      const std::string after = only_quantized ? value : out.graph.inputs().back();
      std::string name = out.graph.insert_after(after, convert);
      out.graph.replace_all_uses(value, name);
    }
  }
  lint(out);
  return out;
}

}  // namespace qb
