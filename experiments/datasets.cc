#include "experiments/datasets.h"

#include "data/fashion_mnist.h"
#include "experiments/paths.h"

namespace qb {

std::unique_ptr<Dataset> open_dataset(Config& config, const std::string& section,
                                      const std::string& split) {
  std::string kind = config.get_string(section + ".kind");
  if (kind == "fashion_mnist") {
    FashionMnistOptions options;
    options.root = resolve_config_path(config.get_string(section + ".root", options.root));
    options.mean = config.get_double(section + ".mean", options.mean);
    options.stddev = config.get_double(section + ".std", options.stddev);
    return std::make_unique<FashionMnist>(split, options);
  }
  throw config.error(section + ".kind", "unknown dataset kind '" + kind + "' (known: fashion_mnist)");
}

}  // namespace qb
