#include "train/loss_plot.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <ATen/ATen.h>

#include "image/png_file.h"

namespace diffuse::train {

namespace {

constexpr int kPanelWidth = 360, kHeight = 240, kMargin = 24;
using Colour = std::array<uint8_t, 3>;

struct Canvas {
  at::Tensor pixels;
  void set(int x, int y, const Colour& c) {
    if (x < 0 || y < 0 || x >= pixels.size(1) || y >= pixels.size(0)) return;
    auto* p = pixels.data_ptr<uint8_t>() + (static_cast<int64_t>(y) * pixels.size(1) + x) * 3;
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
  }
  // Bresenham: the curves are 1-pixel polylines.
  void line(int x0, int y0, int x1, int y1, const Colour& c) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      set(x0, y0, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
};

void draw_panel(Canvas& canvas, int left, const LossSeries& series) {
  const Colour axis{60, 60, 60}, raw{170, 190, 230}, mean{20, 60, 170}, tick{200, 200, 200};
  const int x0 = left + kMargin, x1 = left + kPanelWidth - 8, y0 = kHeight - kMargin, y1 = 8;
  std::vector<double> logs;
  for (double loss : series.losses) logs.push_back(std::log10(std::max(loss, 1e-12)));
  if (logs.empty()) logs.push_back(0);
  const auto [lo_it, hi_it] = std::minmax_element(logs.begin(), logs.end());
  const double lo = std::floor(*lo_it * 4) / 4, hi = std::max(lo + 0.25, std::ceil(*hi_it * 4) / 4);
  const auto px = [&](size_t i) { return x0 + static_cast<int>((x1 - x0) * i / std::max<size_t>(1, logs.size() - 1)); };
  const auto py = [&](double v) { return y0 - static_cast<int>(std::lround((y0 - y1) * (v - lo) / (hi - lo))); };
  for (double decade = std::ceil(lo); decade <= hi; decade += 1) canvas.line(x0, py(decade), x1, py(decade), tick);
  canvas.line(x0, y0, x1, y0, axis);
  canvas.line(x0, y0, x0, y1, axis);
  // Tick marks on the step axis every tenth of the run.
  for (int t = 0; t <= 10; ++t) {
    const int x = x0 + (x1 - x0) * t / 10;
    canvas.line(x, y0, x, y0 + 4, axis);
  }
  for (size_t i = 1; i < logs.size(); ++i) canvas.line(px(i - 1), py(logs[i - 1]), px(i), py(logs[i]), raw);
  const size_t window = std::max<size_t>(1, logs.size() / 50);
  double sum = 0;
  std::vector<double> running;
  for (size_t i = 0; i < logs.size(); ++i) {
    sum += logs[i];
    if (i >= window) sum -= logs[i - window];
    running.push_back(sum / static_cast<double>(std::min(i + 1, window)));
  }
  for (size_t i = 1; i < running.size(); ++i) canvas.line(px(i - 1), py(running[i - 1]), px(i), py(running[i]), mean);
}

}  // namespace

void write_loss_plot(const std::filesystem::path& path, const std::vector<LossSeries>& series) {
  const int panels = std::max<int>(1, static_cast<int>(series.size()));
  Canvas canvas{at::full({kHeight, kPanelWidth * panels, 3}, 255, at::kByte)};
  for (size_t i = 0; i < series.size(); ++i) draw_panel(canvas, static_cast<int>(i) * kPanelWidth, series[i]);
  std::string title = "log10(loss) per step, panels left to right:";
  for (const auto& s : series) title += " " + s.stage;
  image::write_png(path, canvas.pixels, {{"Title", title}});
}

}  // namespace diffuse::train
