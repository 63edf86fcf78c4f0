// Images per second delivered by the data pipeline: the ImageNet evaluation
// pipeline (JPEG decode, Resize 256, CenterCrop 224, ToTensor, Normalize) on
// JPEGs of ImageNet's typical size (500x375) with 1 and 2 workers, and CIFAR-10
// batches. The files are generated once into $QB_BENCH_DIR (default
// /tmp/qb-bench-data) so tools/torchvision_loader_rate.py can time torchvision
// on the very same files. The ImageNet stages are also timed alone on one file:
// decoding the whole JPEG (OpenCV, or libjpeg directly) or only the part the
// pipeline reads, and the transforms on that part.

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <random>
#include <vector>

#include "base/atomic_file.h"
#include "data/cifar.h"
#include "data/imagenet.h"
#include "data/jpeg_decode.h"
#include "data/loader.h"
#include "data/transforms.h"

namespace qb {
namespace {

namespace fs = std::filesystem;

constexpr int kClasses = 4;
constexpr int kImagesPerClass = 32;
constexpr int kCifarRecords = 10000;

fs::path bench_dir() {
  const char* dir = std::getenv("QB_BENCH_DIR");
  return dir && *dir ? fs::path(dir) : fs::path("/tmp/qb-bench-data");
}

// Photographs compress and decode unlike flat colour: draw smooth gradients,
// shapes and noise so JPEG sizes and decode times resemble real images.
void write_jpegs(const fs::path& root) {
  std::mt19937 random(7);
  for (int c = 0; c < kClasses; ++c) {
    fs::path folder = root / "val" / ("n0000000" + std::to_string(c));
    fs::create_directories(folder);
    for (int i = 0; i < kImagesPerClass; ++i) {
      cv::Mat image(375, 500, CV_8UC3);
      cv::randn(image, cv::Scalar(120, 110, 100), cv::Scalar(40, 40, 40));
      cv::GaussianBlur(image, image, cv::Size(0, 0), 3.0);
      for (int s = 0; s < 6; ++s) {
        cv::circle(image, cv::Point(random() % 500, random() % 375), 20 + random() % 80,
                   cv::Scalar(random() % 256, random() % 256, random() % 256), -1, cv::LINE_AA);
      }
      cv::imwrite((folder / ("img_" + std::to_string(i) + ".JPEG")).string(), image,
                  {cv::IMWRITE_JPEG_QUALITY, 90});
    }
  }
}

void write_cifar(const fs::path& root) {
  fs::create_directories(root);
  std::string meta;
  for (const char* name : {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                           "horse", "ship", "truck"}) {
    meta += std::string(name) + "\n";
  }
  qb::write_file_atomically((root / "batches.meta.txt").string(), meta);
  std::mt19937 random(3);
  std::string batch;
  std::vector<char> record(3073);
  for (int r = 0; r < kCifarRecords; ++r) {
    record[0] = static_cast<char>(r % 10);
    for (size_t i = 1; i < record.size(); ++i) record[i] = static_cast<char>(random() & 0xff);
    batch.append(record.data(), record.size());
  }
  qb::write_file_atomically((root / "test_batch.bin").string(), batch);
}

const fs::path& data_root() {
  static const fs::path root = [] {
    fs::path dir = bench_dir();
    if (!fs::exists(dir / "imagenet")) write_jpegs(dir / "imagenet");
    if (!fs::exists(dir / "cifar-10-batches-bin")) write_cifar(dir / "cifar-10-batches-bin");
    return dir;
  }();
  return root;
}

void drain(benchmark::State& state, const Dataset& dataset, int64_t batch_size, int workers) {
  int64_t images = 0;
  for (auto _ : state) {
    LoaderOptions options;
    options.batch_size = batch_size;
    options.workers = workers;
    Loader loader(dataset, options);
    while (std::optional<Batch> batch = loader.next()) images += batch->images.size(0);
  }
  state.SetItemsProcessed(images);
}

void BM_ImageNetEvalPipeline(benchmark::State& state) {
  ImageNetOptions options;
  options.root = (data_root() / "imagenet").string();
  ImageNet dataset(options);
  drain(state, dataset, 32, static_cast<int>(state.range(0)));
}

std::vector<uint8_t> first_jpeg() {
  return read_file_bytes((data_root() / "imagenet" / "val" / "n00000000" / "img_0.JPEG").string());
}

void BM_DecodeOpenCV(benchmark::State& state) {
  std::vector<uint8_t> bytes = first_jpeg();
  for (auto _ : state) {
    cv::Mat bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, bytes.data()),
                               cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    benchmark::DoNotOptimize(rgb.data);
  }
}

/// decode_jpeg_part for the whole image (region 0) or the part the evaluation pipeline reads.
void BM_DecodeJpegPart(benchmark::State& state) {
  const std::vector<uint8_t> bytes = first_jpeg();
  const Compose pipeline = imagenet_eval_pipeline();
  RegionOf region_of;
  if (state.range(0)) region_of = [&](int h, int w) { return pipeline.source_region(h, w); };
  for (auto _ : state) {
    std::optional<ImagePart> part = decode_jpeg_part(bytes.data(), bytes.size(), region_of, "");
    benchmark::DoNotOptimize(part->pixels.data);
  }
}

/// Resize, CenterCrop, ToTensor and Normalize on the decoded part.
void BM_ImageNetTransforms(benchmark::State& state) {
  const std::vector<uint8_t> bytes = first_jpeg();
  const Compose pipeline = imagenet_eval_pipeline();
  const ImagePart part = *decode_jpeg_part(
      bytes.data(), bytes.size(), [&](int h, int w) { return pipeline.source_region(h, w); }, "");
  for (auto _ : state) benchmark::DoNotOptimize(pipeline(part, 0).data_ptr());
}

void BM_Cifar10Batches(benchmark::State& state) {
  CifarOptions options;
  options.root = (data_root() / "cifar-10-batches-bin").string();
  Cifar dataset(CifarVersion::k10, "test", options);
  drain(state, dataset, 256, static_cast<int>(state.range(0)));
}

BENCHMARK(BM_ImageNetEvalPipeline)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Cifar10Batches)->Arg(1)->Arg(2)->ArgName("workers")->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeOpenCV)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeJpegPart)->Arg(0)->Arg(1)->ArgName("region")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ImageNetTransforms)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace qb
