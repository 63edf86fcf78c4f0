#include "data/dataset.h"

#include <ATen/ATen.h>

namespace qb {

void Dataset::write_image(int64_t index, at::Tensor out) const {
  at::Tensor img = image(index);
  // copy_ would broadcast a smaller image silently; a batch needs equal shapes.
  if (img.sizes() != out.sizes()) {
    throw DataError(describe() + ": image " + std::to_string(index) + " has shape " +
                    c10::str(img.sizes()) + " but the batch expects " + c10::str(out.sizes()));
  }
  out.copy_(img);
}

}  // namespace qb
