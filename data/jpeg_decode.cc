#include "data/jpeg_decode.h"

// <cstdio> first: jpeglib.h uses FILE and size_t without including their headers.
#include <cstdio>
#include <jpeglib.h>

#include <algorithm>
#include <csetjmp>
#include <opencv2/core/mat.hpp>

#include "data/dataset.h"

namespace qb {

namespace {

// jpeg_crop_scanline upsamples the cropped columns as if they were the whole image: at a cropped
// edge, fancy upsampling's triangle filter reaches one chroma sample beyond and finds the edge
// replicated instead, so the outermost pixel differs from a full decode's. Extra columns decoded
// on each cropped side and then dropped leave only exact pixels; two, one more than the filter
// reaches. Rows need no such margin: jpeg_skip_scanlines decodes the context rows upsampling needs.
constexpr int kEdgeColumns = 2;

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

// libjpeg's error_exit must not return; it jumps back into the Decompressor step that failed.
void jump_on_error(j_common_ptr info) {
  ErrorManager* errors = reinterpret_cast<ErrorManager*>(info->err);
  info->err->format_message(info, errors->message);
  std::longjmp(errors->jump, 1);
}

/// One libjpeg decompression. libjpeg reports errors by longjmp, which must not skip C++
/// destructors: every step sets its own jump target, holds only plain data, and returns false on
/// an error, which the caller turns into an exception.
class Decompressor {
 public:
  Decompressor() {
    info_.err = jpeg_std_error(&errors_.pub);
    errors_.pub.error_exit = jump_on_error;
    errors_.message[0] = '\0';
  }
  ~Decompressor() { jpeg_destroy_decompress(&info_); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  const jpeg_decompress_struct& info() const { return info_; }
  const char* message() const { return errors_.message; }

  bool read_header(const uint8_t* data, size_t size) {
    if (setjmp(errors_.jump)) return false;
    jpeg_create_decompress(&info_);
    jpeg_mem_src(&info_, data, static_cast<unsigned long>(size));
    jpeg_read_header(&info_, TRUE);
    return true;
  }

  /// Starts an RGB decode of columns [*left, *left + *width), which libjpeg widens to whole
  /// iMCU columns and writes back.
  bool start(JDIMENSION* left, JDIMENSION* width) {
    if (setjmp(errors_.jump)) return false;
    // RGB straight from libjpeg's colour conversion: no BGR image to reorder afterwards.
    info_.out_color_space = JCS_RGB;
    jpeg_start_decompress(&info_);
    if (*width < info_.output_width) jpeg_crop_scanline(&info_, left, width);
    return true;
  }

  /// Skips `top` rows, decodes the next `rows` into `pixels` (`stride` bytes apart), and stops.
  bool read_rows(JDIMENSION top, JDIMENSION rows, uint8_t* pixels, size_t stride) {
    if (setjmp(errors_.jump)) return false;
    if (top > 0 && jpeg_skip_scanlines(&info_, top) != top) return false;
    JSAMPROW pointers[16];
    for (JDIMENSION done = 0; done < rows;) {
      const JDIMENSION batch = std::min<JDIMENSION>(rows - done, 16);
      for (JDIMENSION i = 0; i < batch; ++i) pointers[i] = pixels + (done + i) * stride;
      const JDIMENSION read = jpeg_read_scanlines(&info_, pointers, batch);
      if (read == 0) return false;
      done += read;
    }
    // The rows below are never needed: abort instead of decoding them for jpeg_finish_decompress.
    jpeg_abort_decompress(&info_);
    return true;
  }

 private:
  jpeg_decompress_struct info_{};
  ErrorManager errors_{};
};

[[noreturn]] void fail(const std::string& name, const Decompressor& jpeg) {
  const std::string reason = *jpeg.message() ? jpeg.message() : "the data ended early";
  throw DataError(name + ": cannot be decoded (corrupt image data: " + reason + ")");
}

}  // namespace

std::optional<ImagePart> decode_jpeg_part(const uint8_t* data, size_t size,
                                          const RegionOf& region_of, const std::string& name) {
  if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) return std::nullopt;
  Decompressor jpeg;
  if (!jpeg.read_header(data, size)) fail(name, jpeg);
  const jpeg_decompress_struct& info = jpeg.info();
  if (info.num_components != 3 ||
      (info.jpeg_color_space != JCS_YCbCr && info.jpeg_color_space != JCS_RGB)) {
    return std::nullopt;
  }
  const int height = static_cast<int>(info.image_height);
  const int width = static_cast<int>(info.image_width);
  const CropBox whole{0, 0, height, width};
  const CropBox wanted = region_of ? region_of(height, width).value_or(whole) : whole;

  const int top = std::clamp(wanted.top, 0, height);
  const int bottom = std::clamp(wanted.top + wanted.height, top, height);
  const int left = std::clamp(wanted.left - kEdgeColumns, 0, width);
  const int right = std::clamp(wanted.left + wanted.width + kEdgeColumns, left, width);
  if (bottom == top || right == left) throw DataError(name + ": empty region to decode");
  JDIMENSION crop_left = static_cast<JDIMENSION>(left);
  JDIMENSION crop_width = static_cast<JDIMENSION>(right - left);
  if (!jpeg.start(&crop_left, &crop_width)) fail(name, jpeg);

  cv::Mat decoded(bottom - top, static_cast<int>(crop_width), CV_8UC3);
  if (!jpeg.read_rows(static_cast<JDIMENSION>(top), static_cast<JDIMENSION>(bottom - top),
                      decoded.data, decoded.step[0])) {
    fail(name, jpeg);
  }
  // Only the image's own edges are exact at the crop's sides.
  const int decoded_left = static_cast<int>(crop_left);
  const int decoded_right = decoded_left + static_cast<int>(crop_width);
  const int exact_left = decoded_left > 0 ? decoded_left + kEdgeColumns : 0;
  const int exact_right = decoded_right < width ? decoded_right - kEdgeColumns : width;
  ImagePart part;
  part.height = height;
  part.width = width;
  part.box = {top, exact_left, bottom - top, exact_right - exact_left};
  part.pixels = decoded.colRange(exact_left - decoded_left, exact_right - decoded_left);
  return part;
}

}  // namespace qb
