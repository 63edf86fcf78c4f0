#include "models/checkpoint.h"

// A torch.save file is a zip archive (caffe2's PyTorchStreamReader/Writer
// handle the container) holding `data.pkl`, a pickle program, plus one record
// `data/<key>` of raw little-endian bytes per storage. The pickle refers to a
// storage through a persistent id and rebuilds each tensor as a strided view
// of it. LibTorch's own unpickler cannot read Python's OrderedDict, so this
// file carries a small pickle machine (reading) and emitter (writing) for
// exactly the opcodes torch.save uses for state dicts.
//
// Layout: pickle values, the unpickler, reading archives, writing archives,
// then the public functions.

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

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
  std::string text;                                    // kString; kGlobal as "module.name"
  std::vector<ValuePtr> items;                         // kTuple, kList
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // kDict, in insertion order
  at::Tensor tensor;                                   // kStorage as a 1-D tensor; kTensor
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
    case Value::Kind::kStorage: return "a storage";
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
    if (name != kOrderedDict && name != kRebuildTensor && name != kRebuildParameter && !storage_dtype(name)) {
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
    storage->tensor = load_storage_(key, *dtype, expect_int(*pid.items[4], "a storage size"));
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
    fail("unsupported call " + callable.text + " with " + describe(args));
  }

  /// The view Python builds, copied so it owns its memory; bounds are checked first so no view leaves the record.
  ValuePtr rebuild_tensor(const Value& storage, int64_t offset, const std::vector<int64_t>& sizes,
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
    ValuePtr tensor = make_value(Value::Kind::kTensor);
    tensor->tensor = storage.tensor.as_strided(sizes, strides, offset).clone();
    return tensor;
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

/// Pickles `collections.OrderedDict()` filled with one
/// `_rebuild_tensor_v2(storage i, 0, size, contiguous stride, False, OrderedDict())` per tensor.
std::string pickle_state_dict(const StateDict& sd, const std::vector<at::Tensor>& data) {
  Pickler pickle;
  pickle.global("collections", "OrderedDict");
  pickle.op(kEmptyTuple);
  pickle.op(kReduce);
  pickle.op(kMark);
  for (size_t i = 0; i < sd.size(); ++i) {
    const at::Tensor& tensor = data[i];
    pickle.string(sd[i].first);
    pickle.global("torch._utils", "_rebuild_tensor_v2");
    pickle.op(kMark);
    pickle.op(kMark);
    pickle.string("storage");
    pickle.global("torch", storage_class(sd[i].first, tensor));
    pickle.string(std::to_string(i));
    pickle.string("cpu");
    pickle.integer(tensor.numel());
    pickle.op(kTuple);
    pickle.op(kBinPersId);
    pickle.integer(0);
    pickle.int_tuple(tensor.sizes());
    pickle.int_tuple(tensor.strides());
    pickle.op(kNewFalse);
    pickle.global("collections", "OrderedDict");
    pickle.op(kEmptyTuple);
    pickle.op(kReduce);
    pickle.op(kTuple);
    pickle.op(kReduce);
  }
  pickle.op(kSetItems);
  pickle.op(kStop);
  return pickle.bytes();
}

}  // namespace

// ---------------------------------------------------------------------------
// Public functions

StateDict read_state_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open: " + std::strerror(errno));
  // A read error ends the copy early; the shortened bytes then fail as a damaged archive.
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return parse_state_dict(bytes.str(), path);
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
    throw CheckpointError(origin + ": " + e.what_without_backtrace());
  }
}

std::string serialize_state_dict(const StateDict& sd) {
  // Plain contiguous CPU tensors (no copy when they already are) to take bytes from; lazy
  // conjugate/negative views are materialized because the file has no flag for them.
  std::vector<at::Tensor> data;
  for (const auto& [key, tensor] : sd) {
    storage_class(key, tensor);  // Validate everything before writing anything.
    data.push_back(tensor.cpu().resolve_conj().resolve_neg().contiguous());
  }
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* bytes, size_t n) {
    out.append(static_cast<const char*>(bytes), n);
    return n;
  });
  const std::string pickle = pickle_state_dict(sd, data);
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
  // Same folder, so the rename stays within one file system; the pid keeps concurrent writers apart.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw CheckpointError(path + ": cannot create " + tmp + ": " + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(tmp);
      throw CheckpointError(path + ": writing " + tmp + " failed");
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    std::filesystem::remove(tmp);
    throw CheckpointError(path + ": cannot rename " + tmp + " into place: " + error.message());
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
