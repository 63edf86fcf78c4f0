#include "data/imagenet.h"

#include <ATen/core/Tensor.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "base/atomic_file.h"
#include "data/hash.h"
#include "data/jpeg_decode.h"

namespace qb {

namespace {

namespace fs = std::filesystem;

constexpr const char* kCacheMagic = "qb-imagenet-index 1";

const char* layout_name(ImageNetLayout layout) {
  switch (layout) {
    case ImageNetLayout::kFolder:
      return "folder";
    case ImageNetLayout::kLocVal:
      return "loc-val";
    case ImageNetLayout::kDevkitVal:
      return "devkit-val";
  }
  return "?";
}

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

/// The extensions kept, compared case-insensitively like torchvision's has_file_allowed_extension.
bool is_image_file(const fs::path& path) {
  std::string ext = lower(path.extension().string());
  return ext == ".jpeg" || ext == ".jpg" || ext == ".png";
}

/// Lines without their "\r\n" or "\n"; a missing final newline is fine.
std::vector<std::string> read_lines(const std::string& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path);
  std::vector<std::string> lines;
  std::string line;
  for (uint8_t byte : bytes) {
    if (byte != '\n') {
      line += static_cast<char>(byte);
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    line.clear();
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

std::string first_token(const std::string& text) {
  std::istringstream stream(text);
  std::string token;
  stream >> token;
  return token;
}

/// Why `head` and `tail` (the first and last bytes of a file) are not a whole JPEG or PNG, or "".
/// A truncated JPEG still decodes (libjpeg fills the rest with grey), so the end is checked too.
std::string image_bytes_fault(const std::string& head, std::string tail) {
  if (head.empty()) return "is empty";
  // Some files carry zero padding after the end marker.
  while (!tail.empty() && tail.back() == '\0') tail.pop_back();
  auto ends_with = [&tail](const std::string& suffix) {
    return tail.size() >= suffix.size() &&
           tail.compare(tail.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (head.rfind("\xFF\xD8\xFF", 0) == 0) {
    return ends_with("\xFF\xD9") ? "" : "is a truncated JPEG (no end-of-image marker FF D9)";
  }
  if (head.rfind("\x89PNG\r\n\x1A\n", 0) == 0) {
    return ends_with(std::string("IEND\xAE\x42\x60\x82")) ? ""
                                                          : "is a truncated PNG (no IEND chunk)";
  }
  return "is neither a JPEG nor a PNG file (wrong leading bytes)";
}

/// image_bytes_fault reading only the file's first and last few bytes.
std::string file_fault(const fs::path& path, uint64_t size) {
  constexpr uint64_t kHead = 8;
  constexpr uint64_t kTail = 64;
  std::ifstream file(path, std::ios::binary);
  if (!file) return "cannot be opened";
  std::string head(std::min(size, kHead), '\0');
  std::string tail(std::min(size, kTail), '\0');
  file.read(head.data(), head.size());
  file.seekg(size - tail.size());
  file.read(tail.data(), tail.size());
  if (!file) return "cannot be read";
  return image_bytes_fault(head, tail);
}

std::string required_directory(const std::string& path, const std::string& what) {
  std::error_code error;
  if (!fs::is_directory(path, error))
    throw DataError("imagenet: " + what + " " + path + " does not exist");
  return path;
}

/// Image files directly in `dir`, sorted by name.
std::vector<std::string> image_files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && is_image_file(entry.path())) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

/// "wnid description" lines (e.g. "n01440764 tench, Tinca tinca"): the wnids, and each one's label.
std::vector<std::string> read_synsets(const std::string& path,
                                      std::map<std::string, int64_t>& label_of) {
  std::vector<std::string> wnids;
  std::vector<std::string> lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string wnid = first_token(lines[i]);
    if (wnid.empty()) continue;
    if (!label_of.emplace(wnid, wnids.size()).second) {
      throw DataError(path + ": line " + std::to_string(i + 1) + " repeats wnid " + wnid);
    }
    wnids.push_back(wnid);
  }
  if (wnids.empty()) throw DataError(path + ": no wnids");
  return wnids;
}

/// The modification time in nanoseconds, or "missing".
std::string modified(const std::string& path) {
  std::error_code error;
  auto time = fs::last_write_time(path, error).time_since_epoch();
  if (error) return "missing";
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(time).count());
}

/// A stand-in for a file's contents: its size and modification time, or "missing".
std::string file_stamp(const std::string& path) {
  std::error_code error;
  uint64_t size = fs::file_size(path, error);
  if (error) return "missing";
  return std::to_string(size) + "@" + modified(path);
}

/// A cheap fingerprint of the images directory's top level: every name, and for folders their
/// modification time, which changes when a file is added, removed or renamed inside them.
uint64_t listing_fingerprint(const std::string& dir, const std::vector<std::string>& label_files) {
  std::vector<std::string> items;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    std::string item = entry.path().filename().string();
    if (entry.is_directory()) item += "/" + modified(entry.path().string());
    items.push_back(item);
  }
  std::sort(items.begin(), items.end());
  uint64_t hash = fnv1a(std::to_string(items.size()));
  for (const std::string& item : items) hash = fnv1a(item + "\n", hash);
  for (const std::string& path : label_files)
    hash = fnv1a(path + "=" + file_stamp(path) + "\n", hash);
  return hash;
}

bool is_inside(const fs::path& path, const fs::path& dir) {
  fs::path a = fs::weakly_canonical(path);
  fs::path b = fs::weakly_canonical(dir);
  auto mismatch = std::mismatch(b.begin(), b.end(), a.begin(), a.end());
  return mismatch.first == b.end();
}

}  // namespace

ImageNet::ImageNet(ImageNetOptions options)
    : options_(std::move(options)),
      pipeline_(options_.pipeline ? *options_.pipeline : imagenet_eval_pipeline()) {
  if (options_.limit && *options_.limit < 0) {
    throw DataError("imagenet: limit must not be negative, got " + std::to_string(*options_.limit));
  }
  required_directory(options_.root, "root directory");
  const fs::path root(options_.root);
  bool flat = options_.layout != ImageNetLayout::kFolder;
  images_dir_ =
      flat && !options_.images_dir.empty() ? options_.images_dir : (root / options_.split).string();
  required_directory(images_dir_, flat ? "images directory" : "split directory");
  if (options_.layout == ImageNetLayout::kLocVal) {
    if (options_.labels_file.empty())
      options_.labels_file = (root / "LOC_val_solution.csv").string();
  } else if (options_.layout == ImageNetLayout::kDevkitVal) {
    if (options_.labels_file.empty()) {
      options_.labels_file = (root / "ILSVRC2012_validation_ground_truth.txt").string();
    }
    if (options_.devkit_wnids.empty())
      options_.devkit_wnids = (root / "ILSVRC2012_wnids.txt").string();
  }
  if (flat && options_.synset_mapping.empty()) {
    options_.synset_mapping = (root / "LOC_synset_mapping.txt").string();
  }

  if (options_.cache_dir.empty()) {
    build_index();
  } else {
    // The root may be read-only or shared, so the cache must never land inside it.
    if (is_inside(options_.cache_dir, root)) {
      throw DataError("imagenet: cache_dir " + options_.cache_dir + " lies inside the data root " +
                      options_.root);
    }
    std::vector<std::string> label_files;
    for (const std::string* file :
         {&options_.labels_file, &options_.synset_mapping, &options_.devkit_wnids}) {
      if (!file->empty()) label_files.push_back(fs::absolute(*file).string());
    }
    cache_key_ = fs::weakly_canonical(root).string() + "\t" + layout_name(options_.layout) + "\t" +
                 options_.split + "\t" + fs::absolute(images_dir_).string() +
                 (options_.skip_corrupt ? "\tskip-corrupt" : "");
    for (const std::string& file : label_files) cache_key_ += "\t" + file;
    cache_file_ =
        (fs::path(options_.cache_dir) / ("imagenet-" + hex64(fnv1a(cache_key_)) + ".index")).string();
    uint64_t listing = listing_fingerprint(images_dir_, label_files);
    from_cache_ = read_cache(listing);
    if (!from_cache_) {
      build_index();
      write_cache(listing);
    }
  }
  int64_t total = static_cast<int64_t>(entries_.size());
  size_ = options_.limit ? std::min(*options_.limit, total) : total;
}

void ImageNet::build_index() {
  // (relative file, label) in dataset order, before sizes and the corrupt-file check.
  std::vector<std::pair<std::string, int64_t>> found;
  std::map<std::string, int64_t> label_of;
  if (options_.layout == ImageNetLayout::kFolder) {
    for (const fs::directory_entry& entry : fs::directory_iterator(images_dir_)) {
      if (entry.is_directory()) classes_.push_back(entry.path().filename().string());
    }
    std::sort(classes_.begin(), classes_.end());
    if (classes_.empty()) throw DataError(images_dir_ + ": no class folders");
    for (size_t label = 0; label < classes_.size(); ++label) {
      // torchvision walks each class folder recursively, in sorted(os.walk(...)) order: by
      // directory path, then by file name within a directory.
      fs::path class_dir = fs::path(images_dir_) / classes_[label];
      std::vector<std::string> dirs = {classes_[label]};
      for (const fs::directory_entry& entry : fs::recursive_directory_iterator(
               class_dir, fs::directory_options::follow_directory_symlink)) {
        if (entry.is_directory())
          dirs.push_back(entry.path().lexically_relative(images_dir_).string());
      }
      std::sort(dirs.begin(), dirs.end());
      size_t before = found.size();
      for (const std::string& dir : dirs) {
        for (const std::string& name : image_files_in(fs::path(images_dir_) / dir)) {
          found.emplace_back((fs::path(dir) / name).string(), label);
        }
      }
      if (found.size() == before) {
        throw DataError(class_dir.string() + ": class folder holds no .jpeg, .jpg or .png file");
      }
    }
  } else {
    classes_ = read_synsets(options_.synset_mapping, label_of);
    // The image's id (its file name without extension) -> its label.
    std::map<std::string, int64_t> label_of_image;
    if (options_.layout == ImageNetLayout::kLocVal) {
      std::vector<std::string> lines = read_lines(options_.labels_file);
      for (size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].empty() || lines[i].rfind("ImageId,", 0) == 0) continue;
        size_t comma = lines[i].find(',');
        std::string where = options_.labels_file + ": line " + std::to_string(i + 1);
        if (comma == std::string::npos) throw DataError(where + " has no comma");
        std::string wnid = first_token(lines[i].substr(comma + 1));
        auto label = label_of.find(wnid);
        if (label == label_of.end()) {
          throw DataError(where + ": wnid '" + wnid + "' is not in " + options_.synset_mapping);
        }
        label_of_image[lines[i].substr(0, comma)] = label->second;
      }
    } else {
      std::vector<std::string> ids = read_lines(options_.devkit_wnids);
      while (!ids.empty() && first_token(ids.back()).empty()) ids.pop_back();
      std::vector<std::string> lines = read_lines(options_.labels_file);
      for (size_t i = 0; i < lines.size(); ++i) {
        std::string where = options_.labels_file + ": line " + std::to_string(i + 1);
        std::string token = first_token(lines[i]);
        if (token.empty()) continue;
        bool digits = token.size() <= 9 && std::all_of(token.begin(), token.end(), [](char c) {
                        return std::isdigit(static_cast<unsigned char>(c));
                      });
        long id = digits ? std::stol(token) : 0;
        if (id < 1 || id > static_cast<long>(ids.size())) {
          throw DataError(where + ": ILSVRC2012 id '" + token + "' is outside [1, " +
                          std::to_string(ids.size()) + "] (the ids in " + options_.devkit_wnids +
                          ")");
        }
        std::string wnid = first_token(ids[id - 1]);
        auto label = label_of.find(wnid);
        if (label == label_of.end()) {
          throw DataError(options_.devkit_wnids + ": line " + std::to_string(id) + ": wnid '" +
                          wnid + "' is not in " + options_.synset_mapping);
        }
        char name[48];
        std::snprintf(name, sizeof(name), "ILSVRC2012_val_%08zu", i + 1);
        label_of_image[name] = label->second;
      }
    }
    for (const std::string& name : image_files_in(images_dir_)) {
      auto label = label_of_image.find(fs::path(name).stem().string());
      if (label == label_of_image.end()) {
        throw DataError((fs::path(images_dir_) / name).string() + ": no label in " +
                        options_.labels_file);
      }
      found.emplace_back(name, label->second);
    }
    if (found.empty()) throw DataError(images_dir_ + ": no .jpeg, .jpg or .png files");
  }

  for (auto& [file, label] : found) {
    fs::path path = fs::path(images_dir_) / file;
    uint64_t bytes = fs::file_size(path);
    if (options_.skip_corrupt && !file_fault(path, bytes).empty()) {
      skipped_.push_back(file);
      continue;
    }
    entries_.push_back({file, label, bytes});
  }
}

// The cache file, line by line:
//   qb-imagenet-index 1
//   key <root>\t<layout>\t<split>\t<images dir>[\tskip-corrupt]\t<label files...>
//   listing <hex fingerprint of the images directory's top level and the label files>
//   classes <n>, then n wnids
//   entries <n>, then n lines "<label> <bytes> <relative file>"
//   skipped <n>, then n relative files
// Anything unexpected means the cache is stale or damaged, and the index is rebuilt.
bool ImageNet::read_cache(uint64_t listing) {
  std::ifstream in(cache_file_, std::ios::binary);
  if (!in) return false;
  std::string line;
  auto expect = [&](const std::string& prefix) {
    return std::getline(in, line) && line.rfind(prefix, 0) == 0;
  };
  auto count = [&](const std::string& name, size_t& n) {
    if (!expect(name + " ")) return false;
    try {
      n = std::stoul(line.substr(name.size() + 1));
    } catch (const std::exception&) {
      return false;
    }
    return true;
  };
  size_t n = 0;
  if (!expect(kCacheMagic) || line != kCacheMagic) return false;
  if (!expect("key ") || line.substr(4) != cache_key_) return false;
  if (!expect("listing ") || line.substr(8) != hex64(listing)) return false;
  std::vector<std::string> classes;
  std::vector<Entry> entries;
  std::vector<std::string> skipped;
  if (!count("classes", n)) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!std::getline(in, line)) return false;
    classes.push_back(line);
  }
  if (!count("entries", n)) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!std::getline(in, line)) return false;
    std::istringstream fields(line);
    Entry entry;
    if (!(fields >> entry.label >> entry.bytes) || fields.get() != ' ') return false;
    std::getline(fields, entry.file);
    if (entry.label < 0 || entry.label >= static_cast<int64_t>(classes.size())) return false;
    entries.push_back(entry);
  }
  if (!count("skipped", n)) return false;
  for (size_t i = 0; i < n; ++i) {
    if (!std::getline(in, line)) return false;
    skipped.push_back(line);
  }
  classes_ = std::move(classes);
  entries_ = std::move(entries);
  skipped_ = std::move(skipped);
  return true;
}

void ImageNet::write_cache(uint64_t listing) const {
  std::error_code error;
  fs::create_directories(options_.cache_dir, error);
  std::ostringstream out;
  out << kCacheMagic << "\nkey " << cache_key_ << "\nlisting " << hex64(listing) << "\n";
  out << "classes " << classes_.size() << "\n";
  for (const std::string& wnid : classes_) out << wnid << "\n";
  out << "entries " << entries_.size() << "\n";
  for (const Entry& entry : entries_) out << entry.label << " " << entry.bytes << " " << entry.file << "\n";
  out << "skipped " << skipped_.size() << "\n";
  for (const std::string& file : skipped_) out << file << "\n";
  try {
    write_file_atomically(cache_file_, out.str());
  } catch (const WriteError& e) {
    throw DataError(std::string(e.what()) + " (the index cache; set cache_dir elsewhere)");
  }
}

at::Tensor ImageNet::image(int64_t index) const {
  check_index(index);
  std::string file = path(index);
  std::vector<uint8_t> bytes = read_file_bytes(file);
  size_t tail = std::min<size_t>(bytes.size(), 64);
  std::string fault = image_bytes_fault(
      std::string(bytes.begin(), bytes.begin() + std::min<size_t>(bytes.size(), 8)),
      std::string(bytes.end() - tail, bytes.end()));
  if (!fault.empty()) throw DataError(file + ": " + fault);
  const uint64_t seed = sample_seed(index, options_.seed);
  // Colour JPEGs, nearly all of ImageNet: only the part the pipeline reads is decoded.
  std::optional<ImagePart> part = decode_jpeg_part(
      bytes.data(), bytes.size(),
      [this](int height, int width) { return pipeline_.source_region(height, width); }, file);
  if (part) return pipeline_(*part, seed);
  // PNG, greyscale and CMYK JPEGs. PIL (and so torchvision) ignores EXIF orientation, which
  // OpenCV would otherwise apply.
  cv::Mat bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, bytes.data()),
                             cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  if (bgr.empty()) throw DataError(file + ": cannot be decoded (corrupt image data)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return pipeline_(rgb, seed);
}

int64_t ImageNet::label(int64_t index) const {
  check_index(index);
  return entries_[index].label;
}

std::string ImageNet::path(int64_t index) const {
  check_index(index);
  return (fs::path(images_dir_) / entries_[index].file).string();
}

std::string ImageNet::describe() const {
  int64_t total = static_cast<int64_t>(entries_.size());
  std::string count = std::to_string(size_) + " images";
  if (size_ < total)
    count = "first " + std::to_string(size_) + " of " + std::to_string(total) + " images";
  return "imagenet " + options_.split + " (" + count + ", " + std::to_string(num_classes()) +
         " classes) at " + options_.root;
}

uint64_t ImageNet::fingerprint() const {
  uint64_t hash = fnv1a("imagenet\n");
  for (const std::string& wnid : classes_) hash = fnv1a(wnid + "\n", hash);
  for (int64_t i = 0; i < size_; ++i) {
    const Entry& entry = entries_[i];
    hash = fnv1a(
        entry.file + "\t" + std::to_string(entry.label) + "\t" + std::to_string(entry.bytes) + "\n",
        hash);
  }
  return hash;
}

uint64_t ImageNet::content_hash(int64_t index) const {
  const std::vector<uint8_t> bytes = read_file_bytes(path(index));
  return fnv1a(bytes.data(), bytes.size());
}

void ImageNet::check_index(int64_t index) const {
  if (index < 0 || index >= size_) {
    throw std::out_of_range(describe() + ": index " + std::to_string(index) + " is outside [0, " +
                            std::to_string(size_) + ")");
  }
}

}  // namespace qb
