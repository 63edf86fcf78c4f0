#pragma once
// ImageNet (ILSVRC2012) from JPEG/PNG files decoded with OpenCV, in torchvision's ImageFolder
// layout or as the flat validation directory labelled by Kaggle's LOC_* files or the devkit's
// ground-truth list. Listing and labelling 50000 files is slow on network storage, so the index
// of (file, label) can be cached as a small text file outside the data root and is reused while
// the root's top-level listing and label files are unchanged.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"

namespace qb {

/// How the image files of a split are arranged and labelled.
enum class ImageNetLayout {
  /// root/<split>/<wnid>/**/<file>.{jpeg,jpg,png} (any case), exactly torchvision's ImageFolder:
  /// classes are the sorted wnid folders, files sorted by directory path, then by name.
  kFolder,
  /// root/<split>/<ImageId>.<ext> labelled by LOC_val_solution.csv ("ImageId,PredictionString",
  /// the first token of PredictionString is the wnid); images without a row are an error, rows
  /// without an image are ignored so a subset of the files works.
  kLocVal,
  /// root/<split>/ILSVRC2012_val_<N>.<ext> labelled by line N of the devkit's
  /// ILSVRC2012_validation_ground_truth.txt (1-based ILSVRC2012 ids); `devkit_wnids` maps id k to
  /// the wnid on its line k (one wnid per line, in ILSVRC id order, as the devkit's meta.mat has).
  kDevkitVal,
};

/// Where to find ImageNet, how to label, transform and cache it.
struct ImageNetOptions {
  /// The data root (never written to).
  std::string root = "/usr/share/datasets/imagenet";
  /// The split's directory under root ("train", "val", ...).
  std::string split = "val";
  ImageNetLayout layout = ImageNetLayout::kFolder;
  /// Flat layouts: the directory of images; empty means root/<split>.
  std::string images_dir;
  /// kLocVal: the solution CSV (default root/LOC_val_solution.csv); kDevkitVal: the ground-truth
  /// list (default root/ILSVRC2012_validation_ground_truth.txt).
  std::string labels_file;
  /// Flat layouts: "wnid description" per line, defining class order (default
  /// root/LOC_synset_mapping.txt, which is sorted like ImageFolder's classes).
  std::string synset_mapping;
  /// kDevkitVal: one wnid per line in ILSVRC2012 id order (default root/ILSVRC2012_wnids.txt).
  std::string devkit_wnids;
  /// Where the index is cached; empty means no cache. Must lie outside root.
  std::string cache_dir;
  /// Keep only the first `limit` examples (all of them when unset).
  std::optional<int64_t> limit;
  /// Example i is transformed with seed i, or with `seed` mixed with i when set.
  std::optional<uint64_t> seed;
  /// The transforms; unset means imagenet_eval_pipeline().
  std::optional<Compose> pipeline;
  /// Drop files whose first and last bytes are not a whole JPEG or PNG (checked at index time,
  /// listed by skipped()) instead of failing on them at access. A file that passes this check but
  /// still does not decode throws on access either way.
  bool skip_corrupt = false;
};

/// One split of ImageNet as a Dataset of transformed RGB images.
class ImageNet : public Dataset {
 public:
  /// Indexes the split (or reads the cached index); throws DataError for bad options or files.
  explicit ImageNet(ImageNetOptions options);

  int64_t size() const override { return size_; }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  /// The decoded file (RGB) through the pipeline; DataError naming the file if it is corrupt.
  at::Tensor image(int64_t index) const override;
  int64_t label(int64_t index) const override;
  std::string describe() const override;

  /// The wnids in label order.
  const std::vector<std::string>& class_names() const { return classes_; }
  /// The full path of example `index`'s file.
  std::string path(int64_t index) const;
  /// FNV-1a 64 over the class list and every example's (relative path, label, file size): cheap
  /// for 50,000 files, and it changes when a file is added, removed, relabelled or resized.
  uint64_t fingerprint() const override;
  /// FNV-1a 64 of the file's bytes (reads the file).
  uint64_t content_hash(int64_t index) const override;
  /// Files dropped by skip_corrupt, relative to the images directory.
  const std::vector<std::string>& skipped() const { return skipped_; }
  std::vector<std::string> skipped_files() const override { return skipped_; }
  /// Whether the index came from the cache rather than from listing the root.
  bool from_cache() const { return from_cache_; }
  /// The cache file used (empty without cache_dir).
  const std::string& cache_file() const { return cache_file_; }

 private:
  /// One indexed image: its path relative to images_dir_, label and size in bytes.
  struct Entry {
    std::string file;
    int64_t label;
    uint64_t bytes;
  };

  void build_index();
  bool read_cache(uint64_t listing);
  void write_cache(uint64_t listing) const;
  void check_index(int64_t index) const;

  ImageNetOptions options_;
  std::string images_dir_;
  std::string cache_key_;  // root, layout, split and label files, as written into the cache
  std::string cache_file_;
  bool from_cache_ = false;
  Compose pipeline_;
  std::vector<std::string> classes_;
  std::vector<Entry> entries_;
  std::vector<std::string> skipped_;
  int64_t size_ = 0;
};

}  // namespace qb
