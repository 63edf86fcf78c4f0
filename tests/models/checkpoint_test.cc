#include "models/checkpoint.h"

#include <ATen/ATen.h>
#include "tests/catch.h"

#include <cstdint>
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

using qb::test::read_file;
using qb::test::write_file;

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

/// Same dtype, shape and bytes (so NaN and -0.0 count as equal only to themselves); for quantized tensors
/// the same integer representation and quantizer (qscheme, scales and zero points bit for bit, axis).
bool bit_identical(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.is_quantized()) {
    if (a.qscheme() != b.qscheme() || !bit_identical(a.int_repr(), b.int_repr())) return false;
    if (a.qscheme() == at::kPerTensorAffine) {
      const double scales[] = {a.q_scale(), b.q_scale()};
      return std::memcmp(&scales[0], &scales[1], sizeof(double)) == 0 && a.q_zero_point() == b.q_zero_point();
    }
    return bit_identical(a.q_per_channel_scales(), b.q_per_channel_scales()) &&
           bit_identical(a.q_per_channel_zero_points(), b.q_per_channel_zero_points()) &&
           a.q_per_channel_axis() == b.q_per_channel_axis();
  }
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

/// A quantized tensor holding exactly `ints` (int8 -> qint8, uint8 -> quint8, int32 -> qint32).
at::Tensor per_tensor(const at::Tensor& ints, double scale, int64_t zero_point) {
  return at::_make_per_tensor_quantized_tensor(ints, scale, zero_point);
}
at::Tensor per_channel(const at::Tensor& ints, std::vector<double> scales, std::vector<int64_t> zero_points,
                       int64_t axis) {
  return at::_make_per_channel_quantized_tensor(ints, at::tensor(scales, at::kDouble),
                                                at::tensor(zero_points, at::kLong), axis);
}

/// Every kind of quantized tensor we write, at the edges of each dtype's range, beside a float tensor.
/// The Python check in "torch.load in Python reads the quantized tensors we write" builds the same.
StateDict quantized_state_dict() {
  return {
      {"conv.weight", per_channel(at::arange(24, at::kLong).mul(11).sub(128).to(at::kChar).reshape({3, 2, 2, 2}),
                                  {0.1, 0.25, 1e-7}, {0, -5, 127}, 0)},
      {"act", per_tensor(at::arange(250, 256, at::kLong).to(at::kByte).reshape({2, 3}), 0.1, 255)},
      {"bias", per_tensor(at::tensor({INT32_MIN, -1, 0, INT32_MAX}, at::kInt), 1e-9, -7)},
      {"axis1", per_channel(at::arange(6, at::kLong).mul(50).to(at::kByte).reshape({2, 3}), {0.5, 1.5, 3.0},
                            {0, 10, 255}, 1)},
      {"transposed", per_tensor(at::arange(-3, 3, at::kLong).to(at::kChar).reshape({2, 3}), 0.2, -1).t()},
      {"embedding", at::quantize_per_channel(at::arange(6, at::kFloat).reshape({2, 3}), at::tensor({0.5f, 0.25f}),
                                             at::tensor({1.0f, 2.0f}), 0, at::kQUInt8)},
      {"empty", per_tensor(at::zeros({0, 3}, at::kChar), 0.5, 0)},
      {"float", at::arange(3, at::kFloat)},
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

TEST_CASE("quantized tensors of every dtype and qscheme round trip bit for bit") {
  const StateDict original = quantized_state_dict();
  REQUIRE(original[0].second.qscheme() == at::kPerChannelAffine);
  REQUIRE(original[2].second.scalar_type() == at::kQInt32);
  REQUIRE_FALSE(original[4].second.is_contiguous());
  REQUIRE(original[5].second.qscheme() == at::kPerChannelAffineFloatQParams);
  const std::string path = (qb::test::scratch_dir("quantized_round_trip") / "sd.pt").string();

  qb::write_state_dict(path, original);
  const StateDict loaded = qb::read_state_dict(path);

  require_bit_identical(loaded, original);
  CHECK(read_file(path) == qb::serialize_state_dict(original));
  // Each owns its memory.
  CHECK(loaded[0].second.int_repr().data_ptr() != original[0].second.int_repr().data_ptr());
}

TEST_CASE("quantized tensors saved by Python read with exact integers and quantizers") {
  const StateDict sd = qb::read_state_dict(fixture("quantized.pt"));

  // make_checkpoint_fixtures.py, quantized().
  const at::Tensor e_ints = at::tensor({1, 2, 3, 4, 5, 6}, at::kLong).reshape({2, 3});
  const at::Tensor e_scales = at::tensor({0.5f, 0.25f});
  const at::Tensor e_zero_points = at::tensor({1.0f, 2.0f});
  const StateDict expected = {
      {"w", per_channel(at::arange(-6, 6, at::kLong).to(at::kChar).reshape({3, 4}), {0.1, 0.25, 0.3}, {0, -2, 5}, 0)},
      {"x", per_tensor(at::arange(250, 256, at::kLong).to(at::kByte).reshape({2, 3}), 0.5, 128)},
      {"y", per_tensor(at::tensor({-100000, -1, 0, 70000}, at::kInt), 0.125, 3)},
      {"v", per_channel(at::arange(6, at::kLong).mul(40).add(10).to(at::kByte).reshape({2, 3}), {0.5, 1.5, 0.125},
                        {0, 10, 255}, 1)},
      {"t", per_tensor(at::arange(-3, 3, at::kLong).to(at::kChar).reshape({2, 3}), 0.2, -1).t()},
      {"e", at::quantize_per_channel(e_ints.sub(e_zero_points.reshape({2, 1})).mul(e_scales.reshape({2, 1})),
                                     e_scales, e_zero_points, 0, at::kQUInt8)},
  };
  require_bit_identical(sd, expected);
  CHECK(sd[0].second.scalar_type() == at::kQInt8);
  CHECK(sd[0].second.q_per_channel_scales().scalar_type() == at::kDouble);
  CHECK(sd[0].second.q_per_channel_zero_points().scalar_type() == at::kLong);
  CHECK(sd[1].second.q_scale() == 0.5);
  CHECK(sd[2].second.int_repr()[0].item<int32_t>() == -100000);
  CHECK(sd[4].second.strides() == at::IntArrayRef({1, 3}));  // Python's view strides, as for plain tensors.
  CHECK(sd[5].second.qscheme() == at::kPerChannelAffineFloatQParams);
  CHECK(at::equal(sd[5].second.int_repr().to(at::kLong), e_ints));
}

TEST_CASE("per-channel parameters pickled as lists, as older PyTorch wrote them, read like torch.load does") {
  const StateDict sd = qb::read_state_dict(fixture("quantized_lists.pt"));

  require_bit_identical(sd, {{"w", per_channel(at::arange(-3, 3, at::kLong).to(at::kChar).reshape({2, 3}),
                                               {0.5, 0.125}, {1, -4}, 0)}});
}

TEST_CASE("torch.load in Python reads the quantized tensors we write, and what it re-saves reads back the same") {
  const auto dir = qb::test::scratch_dir("python_reads_quantized");
  const std::string ours = (dir / "ours.pt").string();
  const std::string resaved = (dir / "resaved.pt").string();
  const std::string script = (dir / "check.py").string();
  const StateDict original = quantized_state_dict();
  qb::write_state_dict(ours, original);
  write_file(script, R"(
import collections, sys, torch
ours_path, resaved_path = sys.argv[1:]
ours = torch.load(ours_path)
assert type(ours) is collections.OrderedDict, type(ours)
assert list(ours) == ["conv.weight", "act", "bias", "axis1", "transposed", "embedding", "empty", "float"], list(ours)

def per_tensor(ints, scale, zero_point):
    return torch._make_per_tensor_quantized_tensor(ints, scale, zero_point)

def per_channel(ints, scales, zero_points, axis):
    return torch._make_per_channel_quantized_tensor(
        ints, torch.tensor(scales, dtype=torch.float64), torch.tensor(zero_points), axis)

expected = {
    "conv.weight": per_channel((torch.arange(24) * 11 - 128).to(torch.int8).reshape(3, 2, 2, 2),
                               [0.1, 0.25, 1e-7], [0, -5, 127], 0),
    "act": per_tensor(torch.arange(250, 256).to(torch.uint8).reshape(2, 3), 0.1, 255),
    "bias": per_tensor(torch.tensor([-2**31, -1, 0, 2**31 - 1], dtype=torch.int32), 1e-9, -7),
    "axis1": per_channel((torch.arange(6) * 50).to(torch.uint8).reshape(2, 3), [0.5, 1.5, 3.0], [0, 10, 255], 1),
    "transposed": per_tensor((torch.arange(6) - 3).to(torch.int8).reshape(2, 3), 0.2, -1).t(),
    "embedding": torch.quantize_per_channel(torch.arange(6, dtype=torch.float32).reshape(2, 3),
                                            torch.tensor([0.5, 0.25]), torch.tensor([1.0, 2.0]), 0, torch.quint8),
    "empty": per_tensor(torch.zeros(0, 3, dtype=torch.int8), 0.5, 0),
}
for key, want in expected.items():
    got = ours[key]
    assert got.dtype == want.dtype and got.shape == want.shape and got.qscheme() == want.qscheme(), (key, got)
    assert torch.equal(got.int_repr(), want.int_repr()), (key, got.int_repr())
    if want.qscheme() == torch.per_tensor_affine:
        assert got.q_scale() == want.q_scale() and got.q_zero_point() == want.q_zero_point(), key
    else:
        for name in ["q_per_channel_scales", "q_per_channel_zero_points"]:
            g, w = getattr(got, name)(), getattr(want, name)()
            assert g.dtype == w.dtype and torch.equal(g, w), (key, name, g, w)
        assert got.q_per_channel_axis() == want.q_per_channel_axis(), key
assert torch.equal(ours["float"], torch.arange(3, dtype=torch.float32))
torch.save(ours, resaved_path)
)");

  const std::string command = "/usr/bin/python3 " + script + " " + ours + " " + resaved;
  REQUIRE(std::system(command.c_str()) == 0);
  require_bit_identical(qb::read_state_dict(resaved), original);
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
  SECTION("a zip archive that is not torch.save's") {
    // Once LibTorch's "[enforce fail at inline_container.cc:129] . file in archive is not in
    // a subdirectory: hello.txt".
    const std::string path = (dir / "other.zip").string();
    const std::string command = "/usr/bin/python3 -c \"import zipfile; z = zipfile.ZipFile('" + path +
                                "', 'w'); z.writestr('hello.txt', 'hi'); z.close()\"";
    REQUIRE(std::system(command.c_str()) == 0);
    CHECK(checkpoint_error([&] { qb::read_state_dict(path); }) ==
          path + ": not a torch.save file: file in archive is not in a subdirectory: hello.txt");
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
  SECTION("a quantized tensor with a qscheme torch.load refuses too") {
    const std::string path = fixture("quantized_symmetric.pt");
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }),
               Contains(path) && Contains("unsupported qscheme 'torch.per_tensor_symmetric'"));
  }
  SECTION("per-channel parameters that do not match the channels (torch.load does not check)") {
    const std::string path = fixture("quantized_bad_channels.pt");
    CHECK_THAT(checkpoint_error([&] { qb::read_state_dict(path); }),
               Contains(path) && Contains("do not match the 2 channels of axis 0"));
  }
}

TEST_CASE("truncating or corrupting any byte of a valid file is handled cleanly") {
  const std::string file = GENERATE(as<std::string>(), "tiny_model.pt", "quantized.pt");
  INFO(file);
  const std::string valid = read_file(fixture(file));
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
    const std::string path = (dir / "sparse.pt").string();
    const StateDict sd = {{"w", at::ones({2})}, {"s", at::ones({2}).to_sparse()}};
    CHECK_THAT(checkpoint_error([&] { qb::write_state_dict(path, sd); }), Contains(path) && Contains("'s'"));
    CHECK_FALSE(std::filesystem::exists(path));
  }
  SECTION("a quantized dtype we do not write") {
    const std::string path = (dir / "quint4x2.pt").string();
    const StateDict sd = {{"q", at::quantize_per_tensor(at::ones({2}), 0.1, 0, at::kQUInt4x2)}};
    CHECK_THAT(checkpoint_error([&] { qb::write_state_dict(path, sd); }), Contains(path) && Contains("'q'"));
    CHECK_FALSE(std::filesystem::exists(path));
  }
}
