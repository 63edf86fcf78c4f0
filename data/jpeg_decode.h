#pragma once
// Decoding only the part of a JPEG that a pipeline reads, with libjpeg-turbo directly. A
// Resize(256) -> CenterCrop(224) pipeline never looks at the image's borders, so rows below the
// needed ones are not decoded at all, rows above are only entropy-decoded, and columns outside
// are not transformed, upsampled or colour-converted. libjpeg's settings are left at the defaults
// Pillow and OpenCV use (JDCT_ISLOW, fancy upsampling, full scale), so every decoded pixel equals
// the pixel a full decode gives.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "data/transforms.h"

namespace qb {

/// The part of an image of (height, width) a caller needs, or nullopt for all of it.
using RegionOf = std::function<std::optional<CropBox>(int height, int width)>;

/// Decodes a three-component (YCbCr or RGB) JPEG to RGB, covering at least the box `region_of`
/// names for the image's size (the decoded part is widened to libjpeg's block boundaries, plus
/// context). Returns nullopt for anything else (PNG, greyscale, CMYK), which the caller decodes
/// another way. Throws DataError naming `name` when libjpeg cannot decode the data.
std::optional<ImagePart> decode_jpeg_part(const uint8_t* data, size_t size,
                                          const RegionOf& region_of, const std::string& name);

}  // namespace qb
