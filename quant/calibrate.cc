#include "quant/calibrate.h"

#include <ATen/core/grad_mode.h>

#include "quant/interpreter.h"

namespace qb {

int64_t calibrate(const GraphModule& prepared, const BatchSource& next_batch,
                  const CalibrateOptions& options) {
  at::NoGradGuard no_grad;  // not InferenceMode: observer buffers must stay ordinary tensors
  Interpreter interpreter(prepared);
  int64_t seen = 0;
  while (options.max_examples == 0 || seen < options.max_examples) {
    std::optional<at::Tensor> batch = next_batch();
    if (!batch) break;
    interpreter.run(*batch);
    seen += batch->size(0);
    if (options.on_batch) options.on_batch(seen);
  }
  return seen;
}

}  // namespace qb
