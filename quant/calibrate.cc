#include "quant/calibrate.h"

#include <ATen/core/grad_mode.h>

#include "quant/interpreter.h"

namespace qb {

BatchSource tensor_batches(const at::Tensor& data, int64_t batch_size) {
  int64_t start = 0;
  return [data, batch_size, start]() mutable -> std::optional<at::Tensor> {
    if (start >= data.size(0)) return std::nullopt;
    at::Tensor batch = data.slice(0, start, start + batch_size);
    start += batch_size;
    return batch;
  };
}

BatchSource batches_of(std::vector<at::Tensor> batches) {
  size_t next = 0;
  return [batches = std::move(batches), next]() mutable -> std::optional<at::Tensor> {
    if (next == batches.size()) return std::nullopt;
    return batches[next++];
  };
}

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
