#include "image/opencv_calls.h"

#include <string>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "util/error.h"

namespace diffuse::image {

namespace {

// OpenCV reports misuse as cv::Exception; callers of this layer catch diffuse::Error.
template <typename Call>
void call_opencv(const char* what, Call&& call) {
  try {
    call();
  } catch (const cv::Exception& e) {
    throw Error(std::string(what) + ": OpenCV: " + e.what());
  }
}

// A Mat of the right size and type is written in place; were OpenCV ever to reallocate it instead,
// the caller's buffer would silently keep its old bytes.
void expect_written_in_place(const cv::Mat& output, const std::uint8_t* buffer) {
  if (output.data != buffer) throw Error("OpenCV wrote its result to a new buffer instead of the one given");
}

}  // namespace

void canny_edges(const std::uint8_t* rgb, int height, int width, double low_threshold, double high_threshold,
                 std::uint8_t* edges) {
  call_opencv("canny", [&] {
    // The Mats wrap the caller's buffers: OpenCV writes the edges in place, with no copy to return.
    const cv::Mat input(height, width, CV_8UC3, const_cast<std::uint8_t*>(rgb));
    cv::Mat output(height, width, CV_8UC1, edges);
    cv::Canny(input, output, low_threshold, high_threshold);
    expect_written_in_place(output, edges);
  });
}

void resize_area(const std::uint8_t* pixels, int height, int width, int channels, int new_height, int new_width,
                 std::uint8_t* resized) {
  call_opencv("resize", [&] {
    const cv::Mat input(height, width, CV_8UC(channels), const_cast<std::uint8_t*>(pixels));
    cv::Mat output(new_height, new_width, CV_8UC(channels), resized);
    cv::resize(input, output, cv::Size(new_width, new_height), 0, 0, cv::INTER_AREA);
    expect_written_in_place(output, resized);
  });
}

}  // namespace diffuse::image
