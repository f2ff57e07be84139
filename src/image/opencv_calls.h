// The OpenCV functions the control preprocessors call, on plain uint8 buffers. They sit in a file
// of their own because OpenCV's headers and libtorch's precompiled header are each heavy: this one
// compiles with OpenCV's alone, and no other file of the layer includes OpenCV.
#pragma once
#include <cstdint>

namespace diffuse::image {

// cv::Canny(rgb, low, high) with OpenCV's defaults (3x3 Sobel, L1 magnitude, per pixel the channel
// with the largest gradient), as the AUTOMATIC1111 annotator calls it. `rgb` is height x width x 3,
// row-major; `edges` receives height x width bytes, each 0 or 255. Throws diffuse::Error.
void canny_edges(const std::uint8_t* rgb, int height, int width, double low_threshold, double high_threshold,
                 std::uint8_t* edges);

// cv::resize(..., INTER_AREA): each output pixel the area-weighted mean of the input pixels it
// covers. Buffers are height x width x channels, row-major. Throws diffuse::Error.
void resize_area(const std::uint8_t* pixels, int height, int width, int channels, int new_height, int new_width,
                 std::uint8_t* resized);

}  // namespace diffuse::image
