#include "experiments/datasets.h"

#include "data/cifar.h"
#include "data/fashion_mnist.h"
#include "data/imagenet.h"
#include "data/synthetic.h"
#include "data/transform_spec.h"
#include "experiments/paths.h"

namespace qb {

namespace {

// `transforms = ["Resize(256)", ...]` under `section`, ending in Normalize(mean, std); nullopt
// when the key is absent and `fallback` is empty.
std::optional<Compose> read_pipeline(Config& config, const std::string& section,
                                     const std::vector<std::string>& fallback,
                                     const Normalization& normalization) {
  const std::string key = section + ".transforms";
  if (!config.has(key) && fallback.empty()) return std::nullopt;
  try {
    return parse_pipeline(config.get_string_list(key, fallback), normalization);
  } catch (const std::invalid_argument& e) {
    throw config.error(key, e.what());
  }
}

std::optional<uint64_t> read_seed(Config& config, const std::string& section) {
  if (!config.has(section + ".seed")) return std::nullopt;
  return static_cast<uint64_t>(config.get_int(section + ".seed", kSeedRange));
}

// A per-channel (R, G, B) setting such as mean or std.
std::array<double, 3> three_numbers(Config& config, const std::string& key,
                                    const std::array<double, 3>& fallback) {
  std::vector<double> values =
      config.get_double_list(key, std::vector<double>(fallback.begin(), fallback.end()));
  if (values.size() != 3) throw config.error(key, "needs 3 numbers (R, G, B)");
  return {values[0], values[1], values[2]};
}
// ImageNet as the user keeps it: layout "folder" (ImageFolder), "loc_val" (Kaggle's
// LOC_val_solution.csv) or "devkit_val" (ILSVRC2012 ground-truth list).
DatasetOpener read_imagenet(Config& config, const std::string& section, const std::string& split) {
  ImageNetOptions options;
  options.split = split;
  options.root = resolve_config_path(config.get_string(section + ".root"));
  std::string layout = config.get_string(section + ".layout", "folder");
  if (layout == "folder") {
    options.layout = ImageNetLayout::kFolder;
  } else if (layout == "loc_val") {
    options.layout = ImageNetLayout::kLocVal;
  } else if (layout == "devkit_val") {
    options.layout = ImageNetLayout::kDevkitVal;
  } else {
    throw config.error(section + ".layout",
                       "unknown layout '" + layout + "' (known: folder, loc_val, devkit_val)");
  }
  auto path_option = [&](const std::string& key, std::string& target) {
    if (config.has(section + "." + key)) {
      target = resolve_config_path(config.get_string(section + "." + key));
    }
  };
  path_option("images_dir", options.images_dir);
  path_option("labels_file", options.labels_file);
  path_option("synset_mapping", options.synset_mapping);
  path_option("devkit_wnids", options.devkit_wnids);
  path_option("cache_dir", options.cache_dir);
  if (config.has(section + ".limit")) options.limit = config.get_int(section + ".limit", kCountRange);
  options.skip_corrupt = config.get_bool(section + ".skip_corrupt", false);
  const Normalization imagenet = imagenet_normalization();
  std::array<double, 3> mean = three_numbers(config, section + ".mean",
                                             {imagenet.mean[0], imagenet.mean[1], imagenet.mean[2]});
  std::array<double, 3> stddev = three_numbers(config, section + ".std",
                                               {imagenet.std[0], imagenet.std[1], imagenet.std[2]});
  options.pipeline = read_pipeline(config, section, {"Resize(256)", "CenterCrop(224)"},
                                   {{mean.begin(), mean.end()}, {stddev.begin(), stddev.end()}});
  options.seed = read_seed(config, section);
  return [options] { return std::make_unique<ImageNet>(options); };
}

}  // namespace

DatasetOpener read_dataset(Config& config, const std::string& section, const std::string& split) {
  std::string kind = config.get_string(section + ".kind");
  if (kind == "fashion_mnist") {
    FashionMnistOptions options;
    options.root = resolve_config_path(config.get_string(section + ".root", options.root));
    options.mean = config.get_double(section + ".mean", options.mean);
    options.stddev = config.get_double(section + ".std", options.stddev);
    if (config.has(section + ".limit")) options.limit = config.get_int(section + ".limit", kCountRange);
    options.pipeline = read_pipeline(config, section, {}, {{options.mean}, {options.stddev}});
    options.seed = read_seed(config, section);
    return [split, options] { return std::make_unique<FashionMnist>(split, options); };
  }
  if (kind == "cifar10" || kind == "cifar100") {
    CifarOptions options;
    if (config.has(section + ".root")) {
      options.root = resolve_config_path(config.get_string(section + ".root"));
    }
    options.label = config.get_string(section + ".label", options.label);
    options.mean = three_numbers(config, section + ".mean", options.mean);
    options.stddev = three_numbers(config, section + ".std", options.stddev);
    if (config.has(section + ".limit")) options.limit = config.get_int(section + ".limit", kCountRange);
    options.pipeline =
        read_pipeline(config, section, {},
                      {{options.mean.begin(), options.mean.end()},
                       {options.stddev.begin(), options.stddev.end()}});
    options.seed = read_seed(config, section);
    CifarVersion version = kind == "cifar10" ? CifarVersion::k10 : CifarVersion::k100;
    return [version, split, options] { return std::make_unique<Cifar>(version, split, options); };
  }
  if (kind == "imagenet") return read_imagenet(config, section, split);
  if (kind == "synthetic") {
    SyntheticOptions options;
    options.shape = config.get_int_list(section + ".shape", {1, 1 << 16}, options.shape);
    options.size = config.get_int(section + ".size", kCountRange, options.size);
    options.num_classes = config.get_int(section + ".num_classes", kClassRange, options.num_classes);
    // Each split gets its own images, as two splits of a real data set would.
    options.seed = static_cast<uint64_t>(config.get_int(section + ".seed", kSeedRange, 0)) +
                   (split == "train" ? 0x5eed : 0);
    try {
      Synthetic check(options);  // generates nothing until asked: checks the options now
    } catch (const DataError& e) {
      throw config.error(section, e.what());
    }
    return [options] { return std::make_unique<Synthetic>(options); };
  }
  throw config.error(section + ".kind", "unknown dataset kind '" + kind +
                                            "' (known: fashion_mnist, cifar10, cifar100, imagenet, synthetic)");
}

std::unique_ptr<Dataset> open_dataset(Config& config, const std::string& section,
                                      const std::string& split) {
  return read_dataset(config, section, split)();
}

}  // namespace qb
