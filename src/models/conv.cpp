#include "models/conv.h"

#include "models/kernel_options.h"
#include "models/parameter_init.h"
#include "util/error.h"

namespace diffuse::models {

namespace {

std::vector<int64_t> padding_of(const torch::nn::detail::ConvNdOptions<2>& options) {
  const auto* explicit_padding = c10::get_if<torch::ExpandingArray<2>>(&options.padding());
  if (explicit_padding == nullptr) return {};
  const auto& values = **explicit_padding;
  return {values.begin(), values.end()};
}

// Under SkipParameterInit, libtorch's constructor runs on a 1x1x1 stand-in (whose initialization
// costs nothing) and the real shapes are put in after. Zero padding given as numbers only: the other
// modes keep state the constructor derives from the options.
bool builds_a_stand_in(const torch::nn::Conv2dOptions& options) {
  return SkipParameterInit::active() && c10::get_if<torch::ExpandingArray<2>>(&options.padding()) != nullptr &&
         c10::get_if<torch::enumtype::kZeros>(&options.padding_mode()) != nullptr;
}

torch::nn::Conv2dOptions construction_options(const torch::nn::Conv2dOptions& options) {
  return builds_a_stand_in(options) ? torch::nn::Conv2dOptions(1, 1, 1).bias(options.bias()) : options;
}

}  // namespace

Conv2dImpl::Conv2dImpl(const torch::nn::Conv2dOptions& given) : torch::nn::Conv2dImpl(construction_options(given)) {
  if (!builds_a_stand_in(given)) return;
  // As libtorch's Conv2dImpl turns its options into ConvNdImpl's.
  options = torch::nn::detail::ConvNdOptions<2>(given.in_channels(), given.out_channels(), given.kernel_size())
                .stride(given.stride())
                .padding(given.padding())
                .dilation(given.dilation())
                .transposed(false)
                .output_padding(0)
                .groups(given.groups())
                .bias(given.bias())
                .padding_mode(given.padding_mode());
  const auto& kernel = *given.kernel_size();
  weight.set_data(torch::empty({given.out_channels(), given.in_channels() / given.groups(), kernel[0], kernel[1]}));
  if (given.bias()) bias.set_data(torch::empty({given.out_channels()}));
}

at::Tensor Conv2dImpl::base_forward(const at::Tensor& input) {
  if (!packed()) return torch::nn::Conv2dImpl::forward(input);
  if (at::GradMode::is_enabled() && input.requires_grad()) {
    throw Error("Conv2d: this convolution was packed for inference and cannot record gradients");
  }
  return packed_forward(input);
}

at::Tensor Conv2dImpl::forward(const at::Tensor& input) {
  auto output = base_forward(input);
  if (low_rank_.empty()) return output;
  const auto padding = padding_of(options);
  for (const auto& update : low_rank_) {
    const auto inner = at::conv2d(input, update.down, {}, options.stride(), padding, options.dilation());
    output.add_(at::conv2d(inner, update.up), update.scale);
  }
  return output;
}

void Conv2dImpl::add_low_rank_update(LowRankUpdate update) {
  const auto in = options.in_channels(), out = options.out_channels();
  const auto& kernel = *options.kernel_size();
  const bool fits = update.down.dim() == 4 && update.up.dim() == 4 && update.down.size(1) == in &&
                    update.up.size(0) == out && update.up.size(1) == update.down.size(0) &&
                    update.up.size(2) == 1 && update.up.size(3) == 1 && update.down.size(2) == kernel[0] &&
                    update.down.size(3) == kernel[1];
  if (!fits || options.groups() != 1) {
    throw Error("a low-rank update of down " + c10::str(update.down.sizes()) + " and up " + c10::str(update.up.sizes()) +
                " does not fit a " + std::to_string(kernel[0]) + "x" + std::to_string(kernel[1]) + " convolution of " +
                std::to_string(in) + " -> " + std::to_string(out) + " channels");
  }
  if (padding_of(options).empty()) throw Error("a low-rank update needs a convolution with explicit padding");
  update.down = update.down.to(weight.options()).contiguous();
  update.up = update.up.to(weight.options()).contiguous();
  low_rank_.push_back(std::move(update));
}

at::Tensor Conv2dImpl::packed_forward(const at::Tensor& input) const {
  return at::mkldnn_convolution(input.to_mkldnn(), packed_weight_, bias, padding_, options.stride(), options.dilation(),
                                options.groups())
      .to_dense();
}

bool Conv2dImpl::pack_for_inference() {
  if (packed()) return true;
  const auto dtype = weight.scalar_type();
  const auto padding = padding_of(options);
  if (!at::hasMKLDNN() || !weight.device().is_cpu() || (dtype != at::kFloat && dtype != at::kBFloat16) ||
      (dtype == at::kBFloat16 && !bf16_supported()) ||
      padding.empty() || !c10::get_if<torch::enumtype::kZeros>(&options.padding_mode())) {
    return false;
  }
  torch::NoGradGuard no_grad;
  try {
    padding_ = padding;
    packed_weight_ = at::mkldnn_reorder_conv2d_weight(weight.contiguous().to_mkldnn(), padding_, options.stride(),
                                                      options.dilation(), options.groups());
    // oneDNN's bf16 kernels need AVX-512 and say so only when run: try one before letting go of the weight.
    const int64_t side = 2 * options.kernel_size()->at(0);
    packed_forward(at::zeros({1, weight.size(1) * options.groups(), side, side}, weight.options()));
  } catch (const std::exception&) {  // c10::Error, or oneDNN's own error where its ISA is limited
    packed_weight_ = at::Tensor();
    return false;
  }
  weight.set_data(at::empty({0}, weight.options()));
  return true;
}

int pack_convolutions(torch::nn::Module& module) {
  int packed = 0;
  for (const auto& child : module.modules()) {
    if (auto* conv = dynamic_cast<Conv2dImpl*>(child.get())) packed += conv->pack_for_inference();
  }
  return packed;
}

}  // namespace diffuse::models
