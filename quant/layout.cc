#include "quant/layout.h"

#include <ATen/ATen.h>

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
    Node convert;
    convert.name = input + "_channels_last";
    convert.op = NodeOp::kCallFunction;
    convert.target = "contiguous";
    convert.inputs = {input};
    convert.attrs = {{"memory_format", std::string("channels_last")}};
    std::string name = out.graph.insert_after(out.graph.inputs().back(), convert);
    out.graph.replace_all_uses(input, name);
  }
  lint(out);
  return out;
}

}  // namespace qb
