#include "models/checkpoint.h"

#include <ATen/ATen.h>
#include "tests/catch.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "tests/test_util.h"

namespace {

using Catch::Matchers::Contains;
using qb::CheckpointError;
using qb::StateDict;

std::string fixture(const std::string& name) { return qb::test::source_path("tests/fixtures/" + name).string(); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

/// The message of the CheckpointError `action` throws; any other outcome fails the test.
template <typename Action>
std::string checkpoint_error(Action&& action) {
  try {
    action();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  FAIL("no CheckpointError was thrown");
  return "";
}

/// Same dtype, shape and bytes (so NaN and -0.0 count as equal only to themselves).
bool bit_identical(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

/// One tensor of each dtype we save, in an order that is not alphabetical.
StateDict assorted_state_dict() {
  at::Tensor floats = at::arange(6, at::kFloat).reshape({2, 3});
  floats[0][1] = std::nanf("");
  floats[1][2] = -0.0f;
  return {
      {"z.float", floats},
      {"a.double_transposed", at::arange(12, at::kDouble).reshape({3, 4}).t()},
      {"m.count", at::scalar_tensor(42, at::kLong)},
      {"half", at::arange(4, at::kFloat).mul(0.5).to(at::kHalf)},
      {"bfloat16", at::arange(3, at::kFloat).to(at::kBFloat16)},
      {"bool", at::arange(3, at::kLong).remainder(2).to(at::kBool)},
      {"int32", at::arange(-2, 2, at::kInt)},
      {"int16", at::arange(-3, 3, at::kShort)},
      {"int8", at::arange(-4, 4, at::kChar)},
      {"uint8", at::arange(250, 256, at::kByte)},
      {"big", at::full({2}, int64_t{1} << 40, at::kLong)},
      {"empty", at::zeros({0, 3})},
  };
}

void require_bit_identical(const StateDict& actual, const StateDict& expected) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO(expected[i].first);
    CHECK(actual[i].first == expected[i].first);
    CHECK(bit_identical(actual[i].second, expected[i].second));
  }
}

}  // namespace

TEST_CASE("a written state dict reads back with the same keys, order, dtypes, shapes and bits") {
  const std::string path = (qb::test::scratch_dir("round_trip") / "sd.pt").string();
  const StateDict original = assorted_state_dict();
  REQUIRE_FALSE(original[1].second.is_contiguous());

  qb::write_state_dict(path, original);
  const StateDict loaded = qb::read_state_dict(path);

  require_bit_identical(loaded, original);
  CHECK(loaded[2].second.dim() == 0);
}

TEST_CASE("serialize_state_dict gives the bytes write_state_dict leaves, with no temporary file") {
  const auto dir = qb::test::scratch_dir("serialize");
  const std::string path = (dir / "sd.pt").string();
  const StateDict sd = assorted_state_dict();

  qb::write_state_dict(path, sd);

  CHECK(read_file(path) == qb::serialize_state_dict(sd));
  CHECK(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()) == 1);
  require_bit_identical(qb::parse_state_dict(qb::serialize_state_dict(sd), "memory"), sd);
}

TEST_CASE("a Python model's state_dict() (an OrderedDict with _metadata) reads with exact values") {
  const StateDict sd = qb::read_state_dict(fixture("tiny_model.pt"));

  // make_checkpoint_fixtures.py: tensor i holds 100 * i + 0.5 * arange(numel); num_batches_tracked is 7.
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected = {
      {"0.weight", {2, 1, 3, 3}}, {"0.bias", {2}},         {"1.weight", {2}},
      {"1.bias", {2}},            {"1.running_mean", {2}}, {"1.running_var", {2}},
      {"1.num_batches_tracked", {}}, {"2.weight", {3, 4}}, {"2.bias", {3}},
  };
  REQUIRE(sd.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [key, shape] = expected[i];
    const at::Tensor& tensor = sd[i].second;
    INFO(key);
    REQUIRE(sd[i].first == key);
    REQUIRE(tensor.sizes() == at::IntArrayRef(shape));
    if (key == "1.num_batches_tracked") {
      CHECK(tensor.scalar_type() == at::kLong);
      CHECK(tensor.item<int64_t>() == 7);
    } else {
      CHECK(tensor.scalar_type() == at::kFloat);
      const at::Tensor want = at::arange(tensor.numel(), at::kFloat).mul(0.5).add(100.0 * i).reshape(shape);
      CHECK(at::equal(tensor, want));
    }
  }
}

TEST_CASE("tensors viewing one storage keep their own offsets and strides, in pickle protocols 2 and 4") {
  const std::string file = GENERATE(as<std::string>(), "shared_storage.pt", "shared_storage_protocol4.pt");
  INFO(file);
  const StateDict sd = qb::read_state_dict(fixture(file));

  const at::Tensor base = at::arange(12, at::kDouble).reshape({3, 4});
  const StateDict expected = {
      {"a", base},
      {"b", base.slice(0, 1)},
      {"c", base.t()},
      {"d", base.slice(1, 1, 4, 2)},
      {"e", base[2]},  // An nn.Parameter.
  };
  require_bit_identical(sd, expected);
  // Each result owns its memory: changing one leaves the others alone.
  sd[0].second.fill_(-1);
  CHECK(at::equal(sd[1].second, expected[1].second));
}

TEST_CASE("torch.load in Python reads what we write, and a re-saved Python checkpoint loads into its model") {
  const auto dir = qb::test::scratch_dir("python_reads");
  const std::string ours = (dir / "ours.pt").string();
  const std::string resaved = (dir / "resaved.pt").string();
  const std::string script = (dir / "check.py").string();
  qb::write_state_dict(ours, {
                                 {"weight", at::arange(6, at::kFloat).reshape({2, 3})},
                                 {"transposed", at::arange(12, at::kDouble).reshape({3, 4}).t()},
                                 {"count", at::scalar_tensor(42, at::kLong)},
                                 {"half", at::arange(4, at::kFloat).mul(0.5).to(at::kHalf)},
                                 {"flags", at::arange(3, at::kLong).remainder(2).to(at::kBool)},
                             });
  qb::write_state_dict(resaved, qb::read_state_dict(fixture("tiny_model.pt")));
  write_file(script, R"(
import collections, sys, torch
ours_path, resaved_path, original_path = sys.argv[1:]
ours = torch.load(ours_path)
assert type(ours) is collections.OrderedDict, type(ours)
assert list(ours) == ["weight", "transposed", "count", "half", "flags"], list(ours)
expected = {
    "weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
    "transposed": torch.arange(12, dtype=torch.float64).reshape(3, 4).t(),
    "count": torch.tensor(42),
    "half": (torch.arange(4) * 0.5).half(),
    "flags": torch.tensor([False, True, False]),
}
for key, want in expected.items():
    got = ours[key]
    assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want), (key, got)

model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Linear(4, 3))
model.load_state_dict(torch.load(resaved_path), strict=True)
original = torch.load(original_path)
for key, value in model.state_dict().items():
    assert torch.equal(value, original[key]), key
)");

  const std::string command = "/usr/bin/python3 " + script + " " + ours + " " + resaved + " " +
                              fixture("tiny_model.pt");
  CHECK(std::system(command.c_str()) == 0);
}

TEST_CASE("load_state_dict_strict copies in place through the model's handles, converting dtype") {
  const at::Tensor weight = at::zeros({2, 3});
  const at::Tensor count = at::zeros({}, at::kLong);
  const StateDict model = {{"weight", weight}, {"count", count}};
  const StateDict checkpoint = {{"count", at::scalar_tensor(9, at::kLong)},
                                {"weight", at::arange(6, at::kDouble).reshape({2, 3})}};

  qb::load_state_dict_strict(model, checkpoint, "ckpt.pt");

  CHECK(weight.scalar_type() == at::kFloat);
  CHECK(at::equal(weight, at::arange(6, at::kFloat).reshape({2, 3})));
  CHECK(count.item<int64_t>() == 9);
}

TEST_CASE("load_state_dict_strict lists every mismatch at once and changes nothing") {
  const at::Tensor weight = at::zeros({2, 3});
  const at::Tensor bias = at::zeros({3});
  const at::Tensor scale = at::zeros({1});
  const StateDict model = {{"weight", weight}, {"bias", bias}, {"scale", scale}};
  const StateDict checkpoint = {
      {"weight", at::ones({3, 2})},
      {"scale", at::ones({1})},
      {"extra", at::ones({4, 5})},
  };

  const std::string message =
      checkpoint_error([&] { qb::load_state_dict_strict(model, checkpoint, "resnet18.pth"); });

  CHECK_THAT(message, Contains("resnet18.pth"));
  CHECK_THAT(message, Contains("shape mismatch for weight: checkpoint [3, 2], model [2, 3]"));
  CHECK_THAT(message, Contains("missing key: bias (model shape [3])"));
  CHECK_THAT(message, Contains("unexpected key: extra (checkpoint shape [4, 5])"));
  CHECK_THAT(message, !Contains("scale"));
  CHECK(at::equal(weight, at::zeros({2, 3})));
  CHECK(at::equal(bias, at::zeros({3})));
  CHECK(at::equal(scale, at::zeros({1})));
}

TEST_CASE("unreadable files raise a CheckpointError that names the file") {
  const auto dir = qb::test::scratch_dir("bad_files");
  const std::string valid = read_file(fixture("tiny_model.pt"));
  REQUIRE(valid.size() > 1000);

  SECTION("missing file") {
    const std::string path = (dir / "missing.pt").string();
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }), Contains(path) && Contains("cannot open"));
  }
  SECTION("empty file") {
    const std::string path = (dir / "empty.pt").string();
    write_file(path, "");
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }), Contains(path));
  }
  SECTION("truncated zip") {
    const std::string path = (dir / "truncated.pt").string();
    write_file(path, valid.substr(0, valid.size() / 2));
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }), Contains(path));
  }
  SECTION("random bytes, with and without a zip signature") {
    std::mt19937 random(7);
    std::string noise(2000, '\0');
    for (char& byte : noise) byte = static_cast<char>(random());
    const std::string path = (dir / "noise.pt").string();
    write_file(path, noise);
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }), Contains(path) && Contains("not a zip"));
    write_file(path, "PK\x03\x04" + noise);
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }), Contains(path));
  }
  SECTION("legacy (non-zip) torch.save file") {
    const std::string path = fixture("legacy_format.pt");
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }), Contains(path) && Contains("legacy"));
  }
  SECTION("TorchScript archive") {
    const std::string path = fixture("torchscript.pt");
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }), Contains(path) && Contains("TorchScript"));
  }
  SECTION("a value that is not a tensor") {
    const std::string path = fixture("non_tensor_value.pt");
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }),
               Contains(path) && Contains("entry 'epoch' is the int 3, not a tensor"));
  }
  SECTION("a global outside the state-dict subset") {
    const std::string path = fixture("unknown_global.pt");
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }),
               Contains(path) && Contains("unsupported global 'fractions.Fraction'"));
  }
}

TEST_CASE("truncating or corrupting any byte of a valid file is handled cleanly") {
  const std::string valid = read_file(fixture("tiny_model.pt"));
  // A prime stride keeps this fast (each failure builds a c10::Error backtrace) while cutting everywhere.
  for (size_t length = 0; length < valid.size(); length += 29) {
    CHECK_THAT(checkpoint_error([&] { qb::parse_state_dict(valid.substr(0, length), "cut.pt"); }),
               Contains("cut.pt"));
  }
  for (size_t i = 0; i < valid.size(); ++i) {
    std::string damaged = valid;
    damaged[i] = static_cast<char>(~damaged[i]);
    try {
      qb::parse_state_dict(damaged, "damaged.pt");  // Zip padding and names may change harmlessly.
    } catch (const CheckpointError& e) {
      CHECK_THAT(e.what(), Contains("damaged.pt"));
    }
  }
}

TEST_CASE("write_state_dict names the file when it cannot write") {
  const auto dir = qb::test::scratch_dir("bad_writes");

  SECTION("missing folder") {
    const std::string path = (dir / "no_such_folder" / "sd.pt").string();
    CHECK_THAT(checkpoint_error([&] { qb::write_state_dict(path, assorted_state_dict()); }), Contains(path));
  }
  SECTION("a tensor torch.save's plain format cannot hold") {
    const std::string path = (dir / "quantized.pt").string();
    const StateDict sd = {{"q", at::quantize_per_tensor(at::ones({2}), 0.1, 0, at::kQInt8)}};
    CHECK_THAT(checkpoint_error([&] { qb::write_state_dict(path, sd); }), Contains(path) && Contains("'q'"));
    CHECK_FALSE(std::filesystem::exists(path));
  }
}
