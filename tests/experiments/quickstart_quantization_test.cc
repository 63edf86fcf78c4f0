// Calibration matters: on the shipped quickstart model, int8 without calibration
// is near chance, and int8 calibrated on training images stays within half a
// point of fp32 on the Fashion-MNIST test set.

#include <ATen/ATen.h>

#include "data/batches.h"
#include "data/fashion_mnist.h"
#include "eval/accuracy.h"
#include "models/checkpoint.h"
#include "models/zoo.h"
#include "quant/calibrate.h"
#include "quant/convert.h"
#include "quant/interpreter.h"
#include "quant/prepare.h"
#include "tests/catch.h"
#include "tests/test_util.h"

namespace qb {
namespace {

double top1(const GraphModule& gm, const Dataset& test) {
  Interpreter interpreter(gm);
  return evaluate_accuracy([&](const at::Tensor& x) { return interpreter.run(x); }, test, {})
      .top1_percent();
}

TEST_CASE("calibrated int8 keeps the quickstart model's accuracy; uncalibrated does not") {
  ZooOptions options;
  options.num_classes = 10;
  GraphModule fp32 = fmnist_resnet8(options);
  std::string checkpoint = test::source_path("models/checkpoints/fmnist_resnet8.pt");
  load_state_dict_strict(fp32.state_dict(), read_state_dict(checkpoint), checkpoint);

  FashionMnistOptions data;
  data.limit = 2000;
  FashionMnist test("test", data);
  FashionMnist train("train");

  QConfigMapping mapping;
  mapping.set_global(default_qconfig("onednn"));
  GraphModule uncalibrated = convert(prepare(fp32, mapping), {"onednn", true});

  GraphModule prepared = prepare(fp32, mapping);
  Batches batches(train, epoch_order(train.size(), true, /*seed=*/0, 0), 32, false);
  int64_t next = 0;
  CalibrateOptions calibration;
  calibration.max_examples = 256;
  int64_t seen = calibrate(
      prepared, [&]() -> std::optional<at::Tensor> { return batches.batch(next++).images; },
      calibration);
  CHECK(seen == 256);
  GraphModule calibrated = convert(prepared, {"onednn", false});

  double fp32_top1 = top1(fp32, test);
  double uncalibrated_top1 = top1(uncalibrated, test);
  double calibrated_top1 = top1(calibrated, test);
  WARN("top-1 on 2000 test images: fp32 " << fp32_top1 << "%, int8 uncalibrated "
                                          << uncalibrated_top1 << "%, int8 calibrated (256) "
                                          << calibrated_top1 << "%");
  CHECK(fp32_top1 > 90.0);
  CHECK(uncalibrated_top1 < 30.0);
  CHECK(std::abs(calibrated_top1 - fp32_top1) < 0.5);
}

}  // namespace
}  // namespace qb
