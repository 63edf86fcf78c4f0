#pragma once
// calibrate: runs data through a prepared graph so its observers see it.

#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <vector>

#include "quant/graph_module.h"

namespace qb {

/// Yields the next batch of inputs, or nullopt when the data is exhausted.
using BatchSource = std::function<std::optional<at::Tensor>()>;

/// The rows of `data` (its first dimension) in order, `batch_size` at a time, the last batch
/// possibly shorter: a calibration tensor as PyTorch FX's tests feed it.
BatchSource tensor_batches(const at::Tensor& data, int64_t batch_size);
/// `batches` in order (they are shared, not copied).
BatchSource batches_of(std::vector<at::Tensor> batches);

struct CalibrateOptions {
  /// Stop once this many examples have been seen (0: exhaust the source). Like
  /// PyTorch's tutorial, whole batches are used, so up to a batch more may be seen.
  int64_t max_examples = 0;
  /// Called after each batch with the examples seen so far (progress display).
  std::function<void(int64_t)> on_batch;
};

/// Feeds batches through `prepared` without autograd; returns the examples seen.
/// Observers accumulate, so calling it again continues the calibration.
int64_t calibrate(const GraphModule& prepared, const BatchSource& next_batch,
                  const CalibrateOptions& options);

}  // namespace qb
