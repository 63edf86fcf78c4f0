#include "models/checkpoint.h"

// A torch.save file is a zip archive (caffe2's PyTorchStreamReader/Writer
// handle the container) holding `data.pkl`, a pickle program, plus one record
// `data/<key>` of raw little-endian bytes per storage. The pickle refers to a
// storage through a persistent id and rebuilds each tensor as a strided view
// of it. LibTorch's own unpickler cannot read Python's OrderedDict, so this
// file carries a small pickle machine (reading) and emitter (writing) for
// exactly the opcodes torch.save uses for state dicts.
//
// A quantized tensor's record holds its integer representation (a storage
// class such as torch.QInt8Storage); the pickle rebuilds it with
// `_rebuild_qtensor(..., quantizer_params, ...)`, where quantizer_params is
// (torch.per_tensor_affine, scale, zero_point) or (torch.per_channel_affine,
// scales, zero_points, axis) with the per-channel parameters as tensors (lists
// in files from older PyTorch).
//
// Layout: pickle values, the unpickler, reading archives, writing archives,
// then the public functions.

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "base/atomic_file.h"
#include "base/read_file.h"

namespace qb {
namespace {

// ---------------------------------------------------------------------------
// Pickle values

struct Value;
using ValuePtr = std::shared_ptr<Value>;

/// The Python objects a state-dict pickle builds. Shared pointers, because the
/// memo and the stack alias one object (a dict is filled after it is memoized).
struct Value {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kStorage, kTensor };
  Kind kind = Kind::kNone;
  int64_t integer = 0;                                 // kBool, kInt
  double real = 0;                                     // kFloat
  std::string text;                                    // kString; kGlobal as "module.name"; kStorage's class
  std::vector<ValuePtr> items;                         // kTuple, kList
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // kDict, in insertion order
  at::Tensor tensor;  // kStorage as a 1-D tensor (of the integers, for a quantized storage); kTensor
};

ValuePtr make_value(Value::Kind kind) {
  auto value = std::make_shared<Value>();
  value->kind = kind;
  return value;
}

/// A short description of `value` for error messages ("the global 'fractions.Fraction'").
std::string describe(const Value& value) {
  switch (value.kind) {
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return value.integer ? "True" : "False";
    case Value::Kind::kInt: return "the int " + std::to_string(value.integer);
    case Value::Kind::kFloat: return "the float " + std::to_string(value.real);
    case Value::Kind::kString: return "the string '" + value.text + "'";
    case Value::Kind::kTuple: return "a tuple of " + std::to_string(value.items.size()) + " items";
    case Value::Kind::kList: return "a list";
    case Value::Kind::kDict: return "a dict";
    case Value::Kind::kGlobal: return "the global '" + value.text + "'";
    case Value::Kind::kStorage: return "a storage of class '" + value.text + "'";
    case Value::Kind::kTensor: return "a tensor";
  }
  return "an unknown value";
}

/// The storage classes torch.save names (`torch.FloatStorage`) and their dtypes.
const std::vector<std::pair<std::string, at::ScalarType>>& storage_classes() {
  static const std::vector<std::pair<std::string, at::ScalarType>> classes = {
      {"FloatStorage", at::kFloat},          {"DoubleStorage", at::kDouble},
      {"HalfStorage", at::kHalf},            {"BFloat16Storage", at::kBFloat16},
      {"LongStorage", at::kLong},            {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},          {"CharStorage", at::kChar},
      {"ByteStorage", at::kByte},            {"BoolStorage", at::kBool},
      {"ComplexFloatStorage", at::kComplexFloat}, {"ComplexDoubleStorage", at::kComplexDouble},
      {"QInt8Storage", at::kQInt8},          {"QUInt8Storage", at::kQUInt8},
      {"QInt32Storage", at::kQInt32},
  };
  return classes;
}

/// The dtype of the global `torch.<Name>Storage`, or nullopt for any other global.
std::optional<at::ScalarType> storage_dtype(const std::string& global) {
  for (const auto& [name, dtype] : storage_classes()) {
    if (global == "torch." + name) return dtype;
  }
  return std::nullopt;
}

const char* const kOrderedDict = "collections.OrderedDict";
const char* const kRebuildTensor = "torch._utils._rebuild_tensor_v2";
const char* const kRebuildParameter = "torch._utils._rebuild_parameter";
const char* const kRebuildQTensor = "torch._utils._rebuild_qtensor";
const char* const kPerTensorAffine = "torch.per_tensor_affine";
const char* const kPerChannelAffine = "torch.per_channel_affine";
const char* const kPerChannelAffineFloatQParams = "torch.per_channel_affine_float_qparams";

/// Every qscheme global (torch.qscheme pickles by name). torch.load resolves them all, then
/// _rebuild_qtensor refuses the symmetric ones, which torch.save never writes; so do we.
bool is_qscheme(const std::string& global) {
  return global == kPerTensorAffine || global == kPerChannelAffine || global == kPerChannelAffineFloatQParams ||
         global == "torch.per_tensor_symmetric" || global == "torch.per_channel_symmetric";
}

// ---------------------------------------------------------------------------
// The unpickler

/// Pickle opcodes (Python's Lib/pickle.py names) torch.save uses for state dicts.
enum Opcode : uint8_t {
  kProto = 0x80, kFrame = 0x95, kStop = '.',
  kEmptyDict = '}', kEmptyTuple = ')', kEmptyList = ']', kMark = '(',
  kBinUnicode = 'X', kShortBinUnicode = 0x8c,
  kGlobal = 'c', kStackGlobal = 0x93, kBinPersId = 'Q', kReduce = 'R', kBuild = 'b',
  kTuple = 't', kTuple1 = 0x85, kTuple2 = 0x86, kTuple3 = 0x87,
  kSetItem = 's', kSetItems = 'u', kAppend = 'a', kAppends = 'e',
  kBinInt = 'J', kBinInt1 = 'K', kBinInt2 = 'M', kLong1 = 0x8a, kBinFloat = 'G',
  kNone = 'N', kNewTrue = 0x88, kNewFalse = 0x89,
  kBinPut = 'q', kLongBinPut = 'r', kBinGet = 'h', kLongBinGet = 'j', kMemoize = 0x94,
};

/// Fetches storage `key` as a 1-D tensor of `numel` elements of `dtype`.
using StorageLoader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;

/// Runs data.pkl's program. Only the globals a state dict needs can be named,
/// so a hostile file cannot make it do anything but fail.
class Unpickler {
 public:
  Unpickler(const std::string& pickle, std::string origin, StorageLoader load_storage)
      : pickle_(pickle), origin_(std::move(origin)), load_storage_(std::move(load_storage)) {}

  /// The object the program builds (what Python's pickle.load returns).
  ValuePtr run() {
    for (;;) {
      opcode_offset_ = pos_;
      const uint8_t opcode = read_u8();
      switch (opcode) {
        case kProto: read_u8(); break;
        case kFrame: read_bytes(8); break;  // Frames only group opcodes that follow inline.
        case kNone: push(make_value(Value::Kind::kNone)); break;
        case kNewTrue: push(make_bool(true)); break;
        case kNewFalse: push(make_bool(false)); break;
        case kBinInt: push(make_int(read_le<int32_t>())); break;
        case kBinInt1: push(make_int(read_u8())); break;
        case kBinInt2: push(make_int(read_le<uint16_t>())); break;
        case kLong1: push(make_int(read_long(read_u8()))); break;
        case kBinFloat: push(make_float(read_be_double())); break;
        case kBinUnicode: push(make_string(read_bytes(read_le<uint32_t>()))); break;
        case kShortBinUnicode: push(make_string(read_bytes(read_u8()))); break;
        case kEmptyTuple: push(make_tuple({})); break;
        case kEmptyList: push(make_value(Value::Kind::kList)); break;
        case kEmptyDict: push(make_value(Value::Kind::kDict)); break;
        case kMark: marks_.push_back(stack_.size()); break;
        case kTuple: push(make_tuple(pop_to_mark())); break;
        case kTuple1: push(make_tuple(pop_n(1))); break;
        case kTuple2: push(make_tuple(pop_n(2))); break;
        case kTuple3: push(make_tuple(pop_n(3))); break;
        case kAppend: append(pop_n(1)); break;
        case kAppends: append(pop_to_mark()); break;
        case kSetItem: set_items(pop_n(2)); break;
        case kSetItems: set_items(pop_to_mark()); break;
        case kGlobal: {
          const std::string module = read_line();
          push(make_global(module + "." + read_line()));
          break;
        }
        case kStackGlobal: {
          const std::string name = expect_string(*pop(), "a STACK_GLOBAL name");
          push(make_global(expect_string(*pop(), "a STACK_GLOBAL module") + "." + name));
          break;
        }
        case kBinPersId: push(persistent_load(*pop())); break;
        case kReduce: {
          const ValuePtr args = pop();
          push(call(*pop(), *args));
          break;
        }
        case kBuild: {
          const ValuePtr state = pop();
          build(*top(), *state);
          break;
        }
        case kBinPut: memo_[read_u8()] = top(); break;
        case kLongBinPut: memo_[read_le<uint32_t>()] = top(); break;
        case kMemoize: memo_[memo_.size()] = top(); break;
        case kBinGet: push(memo_get(read_u8())); break;
        case kLongBinGet: push(memo_get(read_le<uint32_t>())); break;
        case kStop:
          if (stack_.size() != 1 || !marks_.empty()) fail("the pickle ends with a malformed stack");
          return stack_.back();
        default: {
          std::ostringstream message;
          message << "unsupported pickle opcode 0x" << std::hex << int{opcode};
          fail(message.str());
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw CheckpointError(origin_ + ": data.pkl byte " + std::to_string(opcode_offset_) + ": " + problem);
  }

  // Reading operands.
  std::string read_bytes(size_t n) {
    if (n > pickle_.size() - pos_) fail("the pickle is truncated");
    std::string bytes = pickle_.substr(pos_, n);
    pos_ += n;
    return bytes;
  }
  uint8_t read_u8() { return static_cast<uint8_t>(read_bytes(1)[0]); }
  /// A little-endian fixed-size integer (pickle's own byte order, whatever the host's).
  template <typename Int>
  Int read_le() {
    const std::string bytes = read_bytes(sizeof(Int));
    uint64_t bits = 0;
    for (size_t i = sizeof(Int); i-- > 0;) bits = (bits << 8) | static_cast<uint8_t>(bytes[i]);
    return static_cast<Int>(bits);
  }
  /// LONG1's operand: `n` bytes of little-endian two's complement.
  int64_t read_long(size_t n) {
    if (n > 8) fail("an integer wider than 64 bits");
    const std::string bytes = read_bytes(n);
    if (n == 0) return 0;
    uint64_t bits = (static_cast<uint8_t>(bytes[n - 1]) & 0x80) ? ~uint64_t{0} : 0;  // sign extension
    for (size_t i = n; i-- > 0;) bits = (bits << 8) | static_cast<uint8_t>(bytes[i]);
    return static_cast<int64_t>(bits);
  }
  double read_be_double() {
    const std::string bytes = read_bytes(8);
    uint64_t bits = 0;
    for (char byte : bytes) bits = (bits << 8) | static_cast<uint8_t>(byte);
    double real;
    std::memcpy(&real, &bits, sizeof real);
    return real;
  }
  std::string read_line() {
    const size_t end = pickle_.find('\n', pos_);
    if (end == std::string::npos) fail("the pickle is truncated");
    std::string line = pickle_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return line;
  }

  // The stack, marks and memo.
  void push(ValuePtr value) { stack_.push_back(std::move(value)); }
  ValuePtr top() const {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail("the pickle pops an empty stack");
    return stack_.back();
  }
  ValuePtr pop() {
    ValuePtr value = top();
    stack_.pop_back();
    return value;
  }
  std::vector<ValuePtr> pop_n(size_t n) {
    std::vector<ValuePtr> values(n);
    for (size_t i = n; i-- > 0;) values[i] = pop();
    return values;
  }
  std::vector<ValuePtr> pop_to_mark() {
    if (marks_.empty()) fail("the pickle closes a MARK it never opened");
    std::vector<ValuePtr> values(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return values;
  }
  ValuePtr memo_get(uint64_t index) const {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail("the pickle reads memo entry " + std::to_string(index) + ", never stored");
    return it->second;
  }

  // Building values.
  static ValuePtr make_bool(bool flag) {
    ValuePtr value = make_value(Value::Kind::kBool);
    value->integer = flag;
    return value;
  }
  static ValuePtr make_int(int64_t integer) {
    ValuePtr value = make_value(Value::Kind::kInt);
    value->integer = integer;
    return value;
  }
  static ValuePtr make_float(double real) {
    ValuePtr value = make_value(Value::Kind::kFloat);
    value->real = real;
    return value;
  }
  static ValuePtr make_string(std::string text) {
    ValuePtr value = make_value(Value::Kind::kString);
    value->text = std::move(text);
    return value;
  }
  static ValuePtr make_tuple(std::vector<ValuePtr> items) {
    ValuePtr value = make_value(Value::Kind::kTuple);
    value->items = std::move(items);
    return value;
  }
  /// Refuses every global a state dict does not need, before anything can call it.
  ValuePtr make_global(const std::string& name) {
    if (name != kOrderedDict && name != kRebuildTensor && name != kRebuildParameter && name != kRebuildQTensor &&
        !storage_dtype(name) && !is_qscheme(name)) {
      fail("unsupported global '" + name + "' (only tensors in a dict are understood)");
    }
    ValuePtr value = make_value(Value::Kind::kGlobal);
    value->text = name;
    return value;
  }

  std::string expect_string(const Value& value, const std::string& what) const {
    if (value.kind != Value::Kind::kString) fail("expected " + what + " to be a string, found " + describe(value));
    return value.text;
  }
  int64_t expect_int(const Value& value, const std::string& what) const {
    if (value.kind != Value::Kind::kInt) fail("expected " + what + " to be an int, found " + describe(value));
    return value.integer;
  }
  /// A Python float, or an int where Python would accept one as a float.
  double expect_real(const Value& value, const std::string& what) const {
    if (value.kind == Value::Kind::kFloat) return value.real;
    if (value.kind == Value::Kind::kInt) return static_cast<double>(value.integer);
    fail("expected " + what + " to be a float, found " + describe(value));
  }
  std::vector<int64_t> expect_ints(const Value& value, const std::string& what) const {
    if (value.kind != Value::Kind::kTuple) fail("expected " + what + " to be a tuple, found " + describe(value));
    std::vector<int64_t> ints;
    for (const ValuePtr& item : value.items) ints.push_back(expect_int(*item, "an element of " + what));
    return ints;
  }

  void append(const std::vector<ValuePtr>& items) {
    Value& list = *top();
    if (list.kind != Value::Kind::kList) fail("APPEND to " + describe(list));
    list.items.insert(list.items.end(), items.begin(), items.end());
  }
  /// Python would replace a repeated key; pickled dicts never repeat one, so entries are appended.
  void set_items(const std::vector<ValuePtr>& keys_and_values) {
    Value& dict = *top();
    if (dict.kind != Value::Kind::kDict) fail("SETITEM on " + describe(dict));
    if (keys_and_values.size() % 2 != 0) fail("SETITEMS with a key but no value");
    for (size_t i = 0; i < keys_and_values.size(); i += 2) {
      dict.entries.emplace_back(keys_and_values[i], keys_and_values[i + 1]);
    }
  }

  /// Python's BUILD sets attributes; an OrderedDict's are `_metadata`, which C++ has no use for.
  void build(const Value& object, const Value& state) const {
    if (object.kind != Value::Kind::kDict || state.kind != Value::Kind::kDict) {
      fail("cannot set the state of " + describe(object) + " from " + describe(state));
    }
  }

  /// torch.save's persistent id: ('storage', torch.FloatStorage, key, location, numel).
  ValuePtr persistent_load(const Value& pid) {
    if (pid.kind != Value::Kind::kTuple || pid.items.size() != 5 || pid.items[0]->kind != Value::Kind::kString ||
        pid.items[0]->text != "storage" || pid.items[1]->kind != Value::Kind::kGlobal) {
      fail("unsupported persistent id: " + describe(pid));
    }
    const std::optional<at::ScalarType> dtype = storage_dtype(pid.items[1]->text);
    if (!dtype) fail("unsupported storage class '" + pid.items[1]->text + "'");
    const std::string key = expect_string(*pid.items[2], "a storage key");
    expect_string(*pid.items[3], "a storage location");  // Everything loads to the CPU.
    ValuePtr storage = make_value(Value::Kind::kStorage);
    storage->text = pid.items[1]->text;
    // A quantized storage's size counts elements of its integer representation (int8 for torch.QInt8Storage).
    storage->tensor = load_storage_(key, c10::toUnderlying(*dtype), expect_int(*pid.items[4], "a storage size"));
    return storage;
  }

  /// REDUCE: calls one of the allowed globals.
  ValuePtr call(const Value& callable, const Value& args) {
    if (callable.kind != Value::Kind::kGlobal) fail("cannot call " + describe(callable));
    if (args.kind != Value::Kind::kTuple) fail("expected call arguments, found " + describe(args));
    const std::vector<ValuePtr>& a = args.items;
    if (callable.text == kOrderedDict && a.empty()) return make_value(Value::Kind::kDict);
    // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata]);
    // requires_grad and hooks concern autograd, which state dicts do not carry.
    if (callable.text == kRebuildTensor && (a.size() == 6 || a.size() == 7)) {
      return rebuild_tensor(*a[0], expect_int(*a[1], "a storage offset"), expect_ints(*a[2], "a tensor size"),
                            expect_ints(*a[3], "a tensor stride"));
    }
    // _rebuild_parameter(tensor, requires_grad, backward_hooks): a Parameter is just its tensor here.
    if (callable.text == kRebuildParameter && a.size() == 3 && a[0]->kind == Value::Kind::kTensor) return a[0];
    // _rebuild_qtensor(storage, offset, size, stride, quantizer_params, requires_grad, backward_hooks).
    if (callable.text == kRebuildQTensor && a.size() == 7) {
      return rebuild_qtensor(*a[0], expect_int(*a[1], "a storage offset"), expect_ints(*a[2], "a tensor size"),
                             expect_ints(*a[3], "a tensor stride"), *a[4]);
    }
    fail("unsupported call " + callable.text + " with " + describe(args));
  }

  /// The view Python builds, copied so it owns its memory.
  ValuePtr rebuild_tensor(const Value& storage, int64_t offset, const std::vector<int64_t>& sizes,
                          const std::vector<int64_t>& strides) {
    if (storage.kind == Value::Kind::kStorage && c10::isQIntType(*storage_dtype(storage.text))) {
      fail("a plain tensor views " + describe(storage) + " (quantized storages need _rebuild_qtensor)");
    }
    ValuePtr tensor = make_value(Value::Kind::kTensor);
    tensor->tensor = view(storage, offset, sizes, strides).clone();
    return tensor;
  }

  /// What Python's _rebuild_qtensor builds: an empty quantized tensor with the pickled quantizer, set to the
  /// stored integers; copied so it owns its memory, like rebuild_tensor's (dense strides kept).
  ValuePtr rebuild_qtensor(const Value& storage, int64_t offset, const std::vector<int64_t>& sizes,
                           const std::vector<int64_t>& strides, const Value& params) {
    if (storage.kind != Value::Kind::kStorage || !c10::isQIntType(*storage_dtype(storage.text))) {
      fail("expected a quantized storage, found " + describe(storage));
    }
    const at::Tensor ints = view(storage, offset, sizes, strides).clone();
    if (params.kind != Value::Kind::kTuple || params.items.empty()) {
      fail("expected quantizer parameters to be a tuple, found " + describe(params));
    }
    const Value& qscheme = *params.items[0];
    if (qscheme.kind != Value::Kind::kGlobal || !is_qscheme(qscheme.text)) {
      fail("expected a qscheme, found " + describe(qscheme));
    }
    const at::TensorOptions options = at::dtype(*storage_dtype(storage.text));
    at::Tensor quantized;
    if (qscheme.text == kPerTensorAffine) {
      if (params.items.size() != 3) fail("per_tensor_affine quantizer parameters are " + describe(params));
      quantized = at::_empty_affine_quantized(sizes, options, expect_real(*params.items[1], "a scale"),
                                              expect_int(*params.items[2], "a zero point"));
    } else if (qscheme.text == kPerChannelAffine || qscheme.text == kPerChannelAffineFloatQParams) {
      if (params.items.size() != 4) fail("per_channel_affine quantizer parameters are " + describe(params));
      quantized = empty_per_channel_quantized(sizes, qscheme.text, *params.items[1], *params.items[2],
                                              expect_int(*params.items[3], "a quantization axis"), options);
    } else {
      fail("unsupported qscheme '" + qscheme.text + "' (only per_tensor_affine and per_channel_affine are understood)");
    }
    // Both span numel elements from their data pointer, so the bytes keep their meaning under ints' strides.
    if (ints.numel() > 0) std::memcpy(quantized.data_ptr(), ints.data_ptr(), ints.nbytes());
    quantized.set_(quantized.storage(), 0, sizes, ints.strides());
    ValuePtr tensor = make_value(Value::Kind::kTensor);
    tensor->tensor = quantized;
    return tensor;
  }

  /// _rebuild_qtensor's per-channel branch; the parameters' dtypes pick the quantizer, as in Python: integer
  /// zero points give per_channel_affine (double scales), float ones per_channel_affine_float_qparams.
  at::Tensor empty_per_channel_quantized(const std::vector<int64_t>& sizes, const std::string& qscheme,
                                         const Value& scales_value, const Value& zero_points_value, int64_t axis,
                                         const at::TensorOptions& options) {
    at::Tensor scales;
    at::Tensor zero_points;
    if (scales_value.kind == Value::Kind::kTensor && zero_points_value.kind == Value::Kind::kTensor) {
      scales = scales_value.tensor;
      zero_points = zero_points_value.tensor;
    } else if (scales_value.kind == Value::Kind::kList && zero_points_value.kind == Value::Kind::kList) {
      // Older PyTorch pickled the parameters as lists; torch.load types them by the qscheme.
      const bool float_qparams = qscheme == kPerChannelAffineFloatQParams;
      std::vector<double> reals;
      for (const ValuePtr& item : scales_value.items) reals.push_back(expect_real(*item, "a scale"));
      scales = at::tensor(reals, at::kDouble).to(float_qparams ? at::kFloat : at::kDouble);
      if (float_qparams) {
        reals.clear();
        for (const ValuePtr& item : zero_points_value.items) reals.push_back(expect_real(*item, "a zero point"));
        zero_points = at::tensor(reals, at::kDouble).to(at::kFloat);
      } else {
        std::vector<int64_t> ints;
        for (const ValuePtr& item : zero_points_value.items) ints.push_back(expect_int(*item, "a zero point"));
        zero_points = at::tensor(ints, at::kLong);
      }
    } else {
      fail("expected per-channel scales and zero points as two tensors or two lists, found " +
           describe(scales_value) + " and " + describe(zero_points_value));
    }
    // Checked here too so a bad file can never make a quantizer read past its parameters.
    const int64_t dims = static_cast<int64_t>(sizes.size());
    if (axis < 0 || axis >= dims) {
      fail("quantization axis " + std::to_string(axis) + " is out of range for a tensor of " +
           std::to_string(dims) + " dimensions");
    }
    if (scales.dim() != 1 || zero_points.dim() != 1 || scales.numel() != sizes[axis] ||
        zero_points.numel() != sizes[axis]) {
      std::ostringstream problem;
      problem << "per-channel scales of shape " << scales.sizes() << " and zero points of shape "
              << zero_points.sizes() << " do not match the " << sizes[axis] << " channels of axis " << axis;
      fail(problem.str());
    }
    if (!c10::isFloatingType(scales.scalar_type())) {
      fail(std::string("per-channel scales must be floating point, not ") + c10::toString(scales.scalar_type()));
    }
    return at::_empty_per_channel_affine_quantized(sizes, scales, zero_points, axis, options);
  }

  /// `storage` viewed as Python's set_ would, before any copy; bounds are checked first so no view leaves the record.
  at::Tensor view(const Value& storage, int64_t offset, const std::vector<int64_t>& sizes,
                  const std::vector<int64_t>& strides) {
    if (storage.kind != Value::Kind::kStorage) fail("expected a storage, found " + describe(storage));
    if (sizes.size() != strides.size()) fail("a tensor's size and stride differ in length");
    const int64_t storage_numel = storage.tensor.numel();
    bool empty = false;
    for (size_t d = 0; d < sizes.size(); ++d) {
      if (sizes[d] < 0 || strides[d] < 0) fail("a tensor has a negative size or stride");
      empty = empty || sizes[d] == 0;
    }
    if (offset < 0) fail("a tensor has a negative storage offset");
    if (!empty) {
      int64_t last = offset;  // The highest element index the view touches.
      for (size_t d = 0; d < sizes.size(); ++d) {
        if (sizes[d] > 1 && strides[d] > 0 && (sizes[d] - 1) > (storage_numel - 1 - last) / strides[d]) {
          last = storage_numel;  // Would leave the storage (or overflow).
          break;
        }
        last += (sizes[d] - 1) * strides[d];
      }
      if (last >= storage_numel) fail("a tensor reaches past the end of its storage");
    }
    return storage.tensor.as_strided(sizes, strides, offset);
  }

  const std::string& pickle_;
  const std::string origin_;
  const StorageLoader load_storage_;
  size_t pos_ = 0;
  size_t opcode_offset_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
};

// ---------------------------------------------------------------------------
// Reading archives

/// Serves the zip reader from memory; unlike caffe2's MemoryReadAdapter it
/// never reads past the end, so a corrupt directory cannot crash us.
class BoundedReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReadAdapter(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    const size_t available = std::min<uint64_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, available);
    return available;
  }

 private:
  const std::string& bytes_;
};

/// Reads each `data/<key>` record once: several tensors may view one storage.
class StorageRecords {
 public:
  StorageRecords(caffe2::serialize::PyTorchStreamReader& reader, const std::string& origin)
      : reader_(reader), origin_(origin) {}

  /// Storage `key` as a 1-D tensor that keeps the record alive.
  at::Tensor get(const std::string& key, at::ScalarType dtype, int64_t numel) {
    auto it = records_.find(key);
    if (it == records_.end()) {
      const std::string name = "data/" + key;
      if (!reader_.hasRecord(name)) throw CheckpointError(origin_ + ": the archive has no record '" + name + "'");
      auto [data, size] = reader_.getRecord(name);
      it = records_.emplace(key, Record{std::make_shared<at::DataPtr>(std::move(data)), size}).first;
    }
    const Record& record = it->second;
    if (numel < 0 || static_cast<uint64_t>(numel) > record.size / c10::elementSize(dtype)) {
      throw CheckpointError(origin_ + ": record 'data/" + key + "' holds " + std::to_string(record.size) +
                            " bytes, too few for " + std::to_string(numel) + " elements of " +
                            c10::toString(dtype));
    }
    std::shared_ptr<at::DataPtr> owner = record.data;
    return at::from_blob(owner->get(), {numel}, [owner](void*) {}, at::dtype(dtype));
  }

 private:
  struct Record {
    std::shared_ptr<at::DataPtr> data;
    size_t size;
  };
  caffe2::serialize::PyTorchStreamReader& reader_;
  const std::string& origin_;
  std::map<std::string, Record> records_;
};

/// Rejects non-zip input up front, naming the usual culprit.
void check_is_zip(const std::string& bytes, const std::string& origin) {
  if (bytes.rfind("PK", 0) == 0) return;
  // Before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) torch.save wrote a bare pickle.
  if (!bytes.empty() && static_cast<uint8_t>(bytes[0]) == kProto) {
    throw CheckpointError(origin +
                          ": legacy (non-zip) torch.save format, which is not supported; re-save it in Python "
                          "with a PyTorch of 1.6 or later");
  }
  throw CheckpointError(origin + ": not a torch.save file (not a zip archive)");
}

/// The pickled object must be a flat dict from names to tensors.
StateDict to_state_dict(const Value& object, const std::string& origin) {
  if (object.kind != Value::Kind::kDict) {
    throw CheckpointError(origin + ": expected a state dict (a dict of tensors), found " + describe(object));
  }
  StateDict state;
  for (const auto& [key, value] : object.entries) {
    if (key->kind != Value::Kind::kString) {
      throw CheckpointError(origin + ": the state dict has a key that is " + describe(*key) + ", not a string");
    }
    if (value->kind != Value::Kind::kTensor) {
      throw CheckpointError(origin + ": entry '" + key->text + "' is " + describe(*value) +
                            ", not a tensor (only flat state dicts of tensors are supported)");
    }
    state.emplace_back(key->text, value->tensor);
  }
  return state;
}

// ---------------------------------------------------------------------------
// Writing archives

/// Emits protocol-2 pickle opcodes, as Python's torch.save does.
class Pickler {
 public:
  Pickler() { bytes_ += {static_cast<char>(kProto), 2}; }

  void op(Opcode opcode) { bytes_ += static_cast<char>(opcode); }

  void integer(int64_t value) {
    if (value >= 0 && value < 0x100) {
      op(kBinInt1);
      append_le(value, 1);
    } else if (value >= 0 && value < 0x10000) {
      op(kBinInt2);
      append_le(value, 2);
    } else if (value >= INT32_MIN && value <= INT32_MAX) {
      op(kBinInt);
      append_le(value, 4);
    } else {
      op(kLong1);
      bytes_ += static_cast<char>(8);
      append_le(value, 8);
    }
  }

  /// BINFLOAT: a Python float, big-endian.
  void real(double value) {
    op(kBinFloat);
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    for (size_t i = 8; i-- > 0;) bytes_ += static_cast<char>((bits >> (8 * i)) & 0xff);
  }

  void string(const std::string& text) {
    op(kBinUnicode);
    append_le(static_cast<int64_t>(text.size()), 4);
    bytes_ += text;
  }

  /// A global, memoized so each is spelled out once, like Python's pickler does.
  void global(const std::string& module, const std::string& name) {
    const std::string qualified = module + "\n" + name + "\n";
    const auto known = memo_.find(qualified);
    if (known != memo_.end()) {
      op(kLongBinGet);
      append_le(known->second, 4);
      return;
    }
    op(kGlobal);
    bytes_ += qualified;
    op(kLongBinPut);
    append_le(static_cast<int64_t>(memo_.size()), 4);
    memo_.emplace(qualified, memo_.size());
  }

  /// Like Python: EMPTY_TUPLE, TUPLE1..3 for short tuples, MARK ... TUPLE beyond.
  void int_tuple(at::IntArrayRef values) {
    static constexpr Opcode kShortTuple[] = {kEmptyTuple, kTuple1, kTuple2, kTuple3};
    if (values.size() > 3) op(kMark);
    for (int64_t value : values) integer(value);
    op(values.size() > 3 ? kTuple : kShortTuple[values.size()]);
  }

  const std::string& bytes() const { return bytes_; }

 private:
  void append_le(int64_t value, size_t width) {
    for (size_t i = 0; i < width; ++i) bytes_ += static_cast<char>((static_cast<uint64_t>(value) >> (8 * i)) & 0xff);
  }

  std::string bytes_;
  std::map<std::string, int64_t> memo_;
};

/// torch.<Name>Storage's name for a dtype we can write.
std::string storage_class(const std::string& key, const at::Tensor& tensor) {
  if (!tensor.defined()) throw CheckpointError("cannot save '" + key + "': the tensor is undefined");
  if (tensor.layout() == at::kStrided) {
    for (const auto& [name, dtype] : storage_classes()) {
      if (tensor.scalar_type() == dtype) return name;
    }
  }
  throw CheckpointError("cannot save '" + key + "': " + tensor.toString() + " tensors are not supported");
}

/// Throws unless `tensor` can be written: a storage class for its dtype and, if quantized, a qscheme
/// torch.save can pickle (it names per_channel_affine_float_qparams per_channel_affine, and torch.load
/// tells them apart by the zero points' dtype).
void check_writable(const std::string& key, const at::Tensor& tensor) {
  storage_class(key, tensor);
  if (!tensor.is_quantized()) return;
  const at::QScheme qscheme = tensor.qscheme();
  if (qscheme != at::kPerTensorAffine && qscheme != at::kPerChannelAffine &&
      qscheme != at::kPerChannelAffineFloatQParams) {
    throw CheckpointError("cannot save '" + key + "': quantized tensors with qscheme " + c10::toString(qscheme) +
                          " are not supported");
  }
}

/// Pickles tensors as torch.save does, collecting the records their persistent ids name
/// (`data/<i>` holds records()[i]: contiguous CPU tensors, a quantized one's integer representation).
class TensorPickler {
 public:
  explicit TensorPickler(Pickler& pickle) : pickle_(pickle) {}

  /// `_rebuild_tensor_v2(storage, 0, size, contiguous stride, False, OrderedDict())`, or for a quantized tensor
  /// `_rebuild_qtensor(storage, 0, size, contiguous stride, quantizer_params, False, OrderedDict())`.
  void write(const std::string& key, const at::Tensor& tensor) {
    if (tensor.is_quantized()) return write_quantized(key, tensor.cpu());
    // Lazy conjugate/negative views are materialized because the file has no flag for them.
    const at::Tensor data = tensor.cpu().resolve_conj().resolve_neg().contiguous();
    pickle_.global("torch._utils", "_rebuild_tensor_v2");
    pickle_.op(kMark);
    storage(storage_class(key, data), data);
    pickle_.op(kNewFalse);
    empty_ordered_dict();
    pickle_.op(kTuple);
    pickle_.op(kReduce);
  }

  const std::vector<at::Tensor>& records() const { return records_; }

 private:
  /// quantizer_params as _tensor.py builds them: (torch.per_tensor_affine, scale, zero_point), or
  /// (torch.per_channel_affine, scales tensor, zero_points tensor, axis) also for float qparams.
  void write_quantized(const std::string& key, const at::Tensor& tensor) {
    pickle_.global("torch._utils", "_rebuild_qtensor");
    pickle_.op(kMark);
    storage(storage_class(key, tensor), tensor.int_repr().contiguous());
    if (tensor.qscheme() == at::kPerTensorAffine) {
      pickle_.global("torch", "per_tensor_affine");
      pickle_.real(tensor.q_scale());
      pickle_.integer(tensor.q_zero_point());
      pickle_.op(kTuple3);
    } else {
      pickle_.op(kMark);
      pickle_.global("torch", "per_channel_affine");
      write(key, tensor.q_per_channel_scales());
      write(key, tensor.q_per_channel_zero_points());
      pickle_.integer(tensor.q_per_channel_axis());
      pickle_.op(kTuple);
    }
    pickle_.op(kNewFalse);
    empty_ordered_dict();
    pickle_.op(kTuple);
    pickle_.op(kReduce);
  }

  /// The persistent id ('storage', torch.<Name>Storage, '<i>', 'cpu', numel) of a new record holding `data`,
  /// then the arguments that view all of it: offset 0, its size and (contiguous) stride.
  void storage(const std::string& storage_class, const at::Tensor& data) {
    pickle_.op(kMark);
    pickle_.string("storage");
    pickle_.global("torch", storage_class);
    pickle_.string(std::to_string(records_.size()));
    pickle_.string("cpu");
    pickle_.integer(data.numel());
    pickle_.op(kTuple);
    pickle_.op(kBinPersId);
    pickle_.integer(0);
    pickle_.int_tuple(data.sizes());
    pickle_.int_tuple(data.strides());
    records_.push_back(data);
  }

  void empty_ordered_dict() {
    pickle_.global("collections", "OrderedDict");
    pickle_.op(kEmptyTuple);
    pickle_.op(kReduce);
  }

  Pickler& pickle_;
  std::vector<at::Tensor> records_;
};

/// Pickles `collections.OrderedDict()` filled with `sd`'s tensors; `records` receives the storages.
std::string pickle_state_dict(const StateDict& sd, std::vector<at::Tensor>& records) {
  Pickler pickle;
  TensorPickler tensors(pickle);
  pickle.global("collections", "OrderedDict");
  pickle.op(kEmptyTuple);
  pickle.op(kReduce);
  pickle.op(kMark);
  for (const auto& [key, tensor] : sd) {
    pickle.string(key);
    tensors.write(key, tensor);
  }
  pickle.op(kSetItems);
  pickle.op(kStop);
  records = tensors.records();
  return pickle.bytes();
}

}  // namespace

// ---------------------------------------------------------------------------
// Public functions

StateDict read_state_dict(const std::string& path) {
  // A read error ends the content early; the shortened bytes then fail as a damaged archive.
  const std::optional<std::string> bytes = read_file(path);
  if (!bytes) throw CheckpointError(path + ": cannot open: " + std::strerror(errno));
  return parse_state_dict(*bytes, path);
}

StateDict parse_state_dict(const std::string& bytes, const std::string& origin_for_errors) {
  const std::string& origin = origin_for_errors;
  check_is_zip(bytes, origin);
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedReadAdapter>(bytes));
    if (reader.hasRecord("constants.pkl")) {
      throw CheckpointError(origin + ": a TorchScript archive (torch.jit.save), not a torch.save state dict");
    }
    if (!reader.hasRecord("data.pkl")) throw CheckpointError(origin + ": the archive has no data.pkl");
    auto [data, size] = reader.getRecord("data.pkl");
    const std::string pickle(static_cast<const char*>(data.get()), size);
    StorageRecords storages(reader, origin);
    Unpickler unpickler(pickle, origin, [&storages](const std::string& key, at::ScalarType dtype, int64_t numel) {
      return storages.get(key, dtype, numel);
    });
    return to_state_dict(*unpickler.run(), origin);
  } catch (const c10::Error& e) {
    // The zip reader reports damage (truncation, bad CRC, missing version) as c10::Error.
    throw CheckpointError(origin + ": not a torch.save file: " + archive_error(e));
  }
}

std::string archive_error(const c10::Error& error) {
  std::string text = error.what_without_backtrace();
  if (text.rfind("[enforce fail at ", 0) == 0) {
    const size_t end = text.find("] ");
    if (end != std::string::npos) text = text.substr(end + 2);
    if (text.rfind(". ", 0) == 0) text = text.substr(2);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string serialize_state_dict(const StateDict& sd) {
  for (const auto& [key, tensor] : sd) check_writable(key, tensor);  // Validate everything before writing anything.
  // Plain contiguous CPU tensors (no copy when they already are) to take bytes from.
  std::vector<at::Tensor> data;
  const std::string pickle = pickle_state_dict(sd, data);
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* bytes, size_t n) {
    out.append(static_cast<const char*>(bytes), n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (size_t i = 0; i < data.size(); ++i) {
    writer.writeRecord("data/" + std::to_string(i), data[i].data_ptr(), data[i].nbytes());
  }
  writer.writeEndOfFile();  // Adds the `version` record.
  return out;
}

void write_state_dict(const std::string& path, const StateDict& sd) {
  std::string bytes;
  try {
    bytes = serialize_state_dict(sd);
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": " + e.what());
  }
  try {
    write_file_atomically(path, bytes);
  } catch (const WriteError& e) {
    throw CheckpointError(e.what());
  }
}

void load_state_dict_strict(const StateDict& destination, const StateDict& source, const std::string& source_name) {
  std::map<std::string, const at::Tensor*> from_source;
  std::vector<std::string> problems;
  for (const auto& [key, tensor] : source) {
    if (!from_source.emplace(key, &tensor).second) problems.push_back("duplicate key in checkpoint: " + key);
  }
  std::set<std::string> wanted;
  for (const auto& [key, tensor] : destination) {
    wanted.insert(key);
    const auto found = from_source.find(key);
    std::ostringstream problem;
    if (found == from_source.end()) {
      problem << "missing key: " << key << " (model shape " << tensor.sizes() << ")";
    } else if (found->second->sizes() != tensor.sizes()) {
      problem << "shape mismatch for " << key << ": checkpoint " << found->second->sizes() << ", model "
              << tensor.sizes();
    } else {
      continue;
    }
    problems.push_back(problem.str());
  }
  for (const auto& [key, tensor] : source) {
    if (wanted.count(key) != 0) continue;
    std::ostringstream problem;
    problem << "unexpected key: " << key << " (checkpoint shape " << tensor.sizes() << ")";
    problems.push_back(problem.str());
  }
  if (!problems.empty()) {
    std::string message = source_name + ": the state dict does not match the model:";
    for (const std::string& problem : problems) message += "\n  " + problem;
    throw CheckpointError(message);
  }
  at::NoGradGuard no_grad;  // Parameters may require grad; loading is not part of any graph.
  // The handles are const, but the storage they share with the model is not.
  for (const auto& [key, tensor] : destination) tensor.copy_(*from_source.at(key));
}

}  // namespace qb
