#include "eval/model_size.h"

#include "models/checkpoint.h"

namespace qb {

int64_t serialized_size_bytes(const GraphModule& gm) {
  return static_cast<int64_t>(serialize_state_dict(gm.state_dict()).size());
}

}  // namespace qb
