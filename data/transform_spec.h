#pragma once
// Transforms named the way torchvision's constructors are written, so an experiment file can say
// transforms = ["Resize(256)", "CenterCrop(224)"] and a reader recognises the pipeline at once.
//
// Accepted (positional or keyword arguments, as in torchvision):
//   Resize(size)                      CenterCrop(size)
//   RandomResizedCrop(size, scale=(lo, hi), ratio=(lo, hi))
//   RandomCrop(size, padding=0)       RandomHorizontalFlip(p=0.5)
// ToTensor and Normalize always end the pipeline and are not named.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/transforms.h"

namespace qb {

/// The transform `spec` names; std::invalid_argument saying what is wrong with it otherwise.
std::shared_ptr<const ImageTransform> parse_transform(const std::string& spec);

/// Every spec in order, then ToTensor, then Normalize when `normalization` is set. An error names
/// the spec's position: "transform 2 (\"CenterCrop(x)\"): ...".
Compose parse_pipeline(const std::vector<std::string>& specs,
                       const std::optional<Normalization>& normalization);

}  // namespace qb
