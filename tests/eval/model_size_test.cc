#include "eval/model_size.h"

#include "models/zoo.h"
#include "tests/catch.h"

namespace qb {
namespace {

TEST_CASE("model size is the serialized state dict, about 4 bytes per fp32 value") {
  ZooOptions options;
  options.num_classes = 10;
  GraphModule gm = fmnist_resnet8(options);
  int64_t values = 0;
  for (const auto& [name, tensor] : gm.state_dict()) values += tensor.numel();
  int64_t bytes = serialized_size_bytes(gm);
  CHECK(bytes > 4 * values);
  CHECK(bytes < 4 * values + 64 * 1024);  // pickle and zip overhead stays small
  CHECK(to_megabytes(2500000) == 2.5);
}

}  // namespace
}  // namespace qb
