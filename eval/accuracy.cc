#include "eval/accuracy.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstdio>

#include "data/batches.h"
#include "data/loader.h"
#include "data/subsets.h"
#include "eval/progress.h"

namespace qb {

double AccuracyCounts::top1_percent() const {
  return examples ? 100.0 * static_cast<double>(top1_correct) / static_cast<double>(examples) : 0.0;
}

double AccuracyCounts::top5_percent() const {
  return examples ? 100.0 * static_cast<double>(top5_correct) / static_cast<double>(examples) : 0.0;
}

double AccuracyCounts::mean_loss() const {
  return examples ? loss_sum / static_cast<double>(examples) : 0.0;
}

void accumulate(AccuracyCounts& counts, const at::Tensor& logits, const at::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0),
              "accumulate expects logits (N, classes) and labels (N), got ", logits.sizes(),
              " and ", labels.sizes());
  at::Tensor fp_logits = logits.to(at::kFloat);
  int64_t k = std::min<int64_t>(5, fp_logits.size(1));
  at::Tensor topk = std::get<1>(fp_logits.topk(k, /*dim=*/1));
  at::Tensor hits = topk.eq(labels.unsqueeze(1));
  counts.top1_correct += hits.select(1, 0).sum().item<int64_t>();
  counts.top5_correct += hits.any(1).sum().item<int64_t>();
  counts.loss_sum +=
      at::cross_entropy_loss(fp_logits, labels, {}, at::Reduction::Sum).item<double>();
  counts.examples += labels.size(0);
}

AccuracyCounts evaluate_accuracy(const Classifier& classifier, const Dataset& dataset,
                                 const AccuracyOptions& options) {
  c10::InferenceMode no_autograd;
  int64_t n = options.limit > 0 ? std::min(options.limit, dataset.size()) : dataset.size();
  AccuracyCounts counts;
  if (n == 0) return counts;
  LoaderOptions loading;
  loading.batch_size = options.batch_size;
  loading.workers = options.workers;
  const Subset first_n(dataset, epoch_order(n, /*shuffle=*/false, 0, 0));
  Loader loader(first_n, loading);
  std::unique_ptr<Progress> progress;
  if (!options.progress_label.empty()) {
    progress = std::make_unique<Progress>(options.progress_label, n);
  }
  while (std::optional<Batch> batch = loader.next()) {
    accumulate(counts, classifier(batch->images), batch->labels);
    if (progress) progress->update(counts.examples);
  }
  if (progress) {
    char detail[64];
    std::snprintf(detail, sizeof detail, "top-1 %.2f%%", counts.top1_percent());
    progress->finish(detail);
  }
  return counts;
}

}  // namespace qb
