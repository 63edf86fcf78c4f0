#pragma once
// PyTorch state dicts on disk, in torch.save's zip format, readable and
// writable both here and in Python (torch.load / torch.save).
//
// Reading accepts what `torch.save(model.state_dict(), path)` writes, including
// torchvision's published checkpoints: a flat dict (or OrderedDict) from names
// to dense CPU-loadable tensors, or quantized ones (qint8, quint8, qint32; per
// tensor affine, per channel affine, per channel with float qparams). The
// OrderedDict's `_metadata` (module versions) is dropped. Wrapped checkpoints
// such as {"model": {...}, "epoch": 3}, legacy (non-zip) files, TorchScript
// archives, other qschemes or quantized dtypes and any other Python object are
// rejected with a CheckpointError that names the file. A quantized tensor comes
// back with its stored integers and quantizer bit for bit.
//
// Writing produces `archive/data.pkl`, `archive/data/<i>` (one storage per
// tensor, plus one each for a per-channel tensor's scales and zero points) and
// `archive/version`; data.pkl pickles a collections.OrderedDict, as
// `model.state_dict()` does, so torch.load returns the same type.

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qb {

/// A state dict in PyTorch's order: "layer1.0.conv1.weight" -> tensor.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

/// Any failure to read, write or apply a checkpoint; the message names the file.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What LibTorch's archive reader says is wrong with a file, without its source location
/// ("[enforce fail at inline_container.cc:129] . file in archive is not in a subdirectory:
/// x" becomes "file in archive is not in a subdirectory: x").
std::string archive_error(const c10::Error& error);

/// Reads a torch.save file holding a flat state dict; tensors own their memory and live on the CPU.
StateDict read_state_dict(const std::string& path);

/// Like read_state_dict, from the file's bytes; `origin_for_errors` starts every error message.
StateDict parse_state_dict(const std::string& bytes, const std::string& origin_for_errors);

/// Writes `sd` as torch.save would, atomically (temporary file in the same folder, then rename).
void write_state_dict(const std::string& path, const StateDict& sd);

/// The bytes write_state_dict writes (its size is the model size PyTorch's print_size_of_model reports).
std::string serialize_state_dict(const StateDict& sd);

/// Strict copy of `source` into `destination` (tensors in `destination` alias a model's parameters, so copy_ in place).
/// Any missing key, unexpected key or shape mismatch -> CheckpointError listing EVERY such key (with both shapes),
/// naming `source_name`; nothing is modified unless everything matches. dtype converts if needed.
void load_state_dict_strict(const StateDict& destination, const StateDict& source, const std::string& source_name);

}  // namespace qb
