#include "models/linear.h"

#include <map>
#include <mutex>
#include <string>

#include "models/kernel_options.h"
#include "models/parameter_init.h"
#include "util/error.h"

#ifdef DIFFUSE_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace diffuse::models {

#ifdef DIFFUSE_HAVE_DNNL

namespace {

using dnnl::memory;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

memory::data_type dnnl_type(at::ScalarType dtype) {
  return dtype == at::kBFloat16 ? memory::data_type::bf16 : memory::data_type::f32;
}

dnnl::matmul::primitive_desc matmul_description(const memory::desc& source, const memory::desc& weights,
                                                const memory::desc& bias, const memory::desc& destination) {
#if DNNL_VERSION_MAJOR >= 3
  return dnnl::matmul::primitive_desc(cpu_engine(), source, weights, bias, destination);
#else
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(source, weights, bias, destination), cpu_engine());
#endif
}

// A reference kernel accepts any layout, at a fraction of the speed of the others.
bool is_reference_kernel(const dnnl::matmul::primitive_desc& description) {
  return std::string(description.impl_info_str()).find("ref") != std::string::npos;
}

// `source` copied into the layout `layout`.
memory reordered(memory source, const memory::desc& layout) {  // a handle: copies share the data
  memory target(layout, cpu_engine());
  dnnl::stream stream(cpu_engine());
  dnnl::reorder(source, target).execute(stream, source, target);
  stream.wait();
  return target;
}

}  // namespace

// The weight as oneDNN reordered it, and one primitive per row count: a product's kernels are
// chosen for its exact shape, and a model multiplies each weight by a handful of row counts
// (batch x tokens), so each is set up once.
struct PackedMatmul {
  struct Product {
    dnnl::matmul primitive;
    memory weights;  // the packed weights, or a copy in the layout this row count needs
  };

  int64_t in_features = 0, out_features = 0;
  at::ScalarType dtype = at::kFloat;
  memory weights;
  at::Tensor bias;  // contiguous, the weight's dtype; undefined without bias
  std::mutex mutex;
  std::map<int64_t, Product> products;

  memory::desc rows_desc(int64_t rows, int64_t columns) const {
    return memory::desc({rows, columns}, dnnl_type(dtype), memory::format_tag::ab);
  }
  memory::desc bias_desc() const {
    return bias.defined() ? rows_desc(1, out_features) : memory::desc();
  }
  // A product of `rows` rows whose weight layout oneDNN chooses.
  dnnl::matmul::primitive_desc description_choosing_layout(int64_t rows) const {
    const memory::desc any({in_features, out_features}, dnnl_type(dtype), memory::format_tag::any);
    return matmul_description(rows_desc(rows, in_features), any, bias_desc(), rows_desc(rows, out_features));
  }

  // The product for `rows` rows, reading the packed weights where oneDNN accepts their layout for
  // this shape, otherwise a copy reordered into the layout it asks for.
  Product& product_for(int64_t rows) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = products.find(rows);
    if (found != products.end()) return found->second;
    try {
      auto description = matmul_description(rows_desc(rows, in_features), weights.get_desc(), bias_desc(),
                                            rows_desc(rows, out_features));
      if (!is_reference_kernel(description)) {
        return products.emplace(rows, Product{dnnl::matmul(description), weights}).first->second;
      }
    } catch (const dnnl::error&) {  // no kernel reads that layout at this shape
    }
    auto description = description_choosing_layout(rows);
    return products.emplace(rows, Product{dnnl::matmul(description), reordered(weights, description.weights_desc())})
        .first->second;
  }

  at::Tensor forward(const at::Tensor& input) {
    RECORD_FUNCTION("diffuse::linear", std::vector<c10::IValue>());  // named in profiles
    if (input.scalar_type() != dtype || !input.device().is_cpu()) {
      throw Error(std::string("Linear: the weight was packed for ") + c10::toString(dtype) +
                  " on the CPU, the input is " + c10::toString(input.scalar_type()) + " on " + input.device().str());
    }
    if (input.dim() == 0 || input.size(-1) != in_features) {
      throw Error("Linear: expected inputs with " + std::to_string(in_features) + " features in the last dimension, got " +
                  c10::str(input.sizes()));
    }
    auto output_sizes = input.sizes().vec();
    output_sizes.back() = out_features;
    auto output = at::empty(output_sizes, input.options());
    const int64_t rows = input.numel() / in_features;
    if (rows == 0) return output;
    const auto source = input.contiguous();
    auto& product = product_for(rows);
    memory source_memory(rows_desc(rows, in_features), cpu_engine(), source.data_ptr());
    memory destination_memory(rows_desc(rows, out_features), cpu_engine(), output.data_ptr());
    std::unordered_map<int, memory> arguments{
        {DNNL_ARG_SRC, source_memory}, {DNNL_ARG_WEIGHTS, product.weights}, {DNNL_ARG_DST, destination_memory}};
    if (bias.defined()) arguments.emplace(DNNL_ARG_BIAS, memory(bias_desc(), cpu_engine(), bias.data_ptr()));
    dnnl::stream stream(cpu_engine());
    product.primitive.execute(stream, arguments);
    stream.wait();
    return output;
  }
};

bool LinearImpl::pack_for_inference() {
  if (packed()) return true;
  const auto dtype = weight.scalar_type();
  if (!weight.device().is_cpu() || (dtype != at::kFloat && dtype != at::kBFloat16)) return false;
  if (dtype == at::kBFloat16 && !bf16_supported()) return false;
  torch::NoGradGuard no_grad;
  auto packing = std::make_shared<PackedMatmul>();
  packing->in_features = options.in_features();
  packing->out_features = options.out_features();
  packing->dtype = dtype;
  if (bias.defined()) packing->bias = bias.detach().contiguous();  // small: the module keeps its copy too
  try {
    // oneDNN multiplies (rows x in) by (in x out); torch's (out x in) weight is that matrix transposed.
    const auto dense = weight.detach().contiguous();
    memory dense_memory({{packing->in_features, packing->out_features}, dnnl_type(dtype), memory::format_tag::ba},
                              cpu_engine(), dense.data_ptr());
    // The layout is chosen for a product of many rows: the UNet's, whose time this is about.
    const auto description = packing->description_choosing_layout(4096);
    if (is_reference_kernel(description)) return false;  // no fast kernel for this dtype on this CPU
    packing->weights = reordered(dense_memory, description.weights_desc());
  } catch (const dnnl::error&) {
    return false;  // no oneDNN kernel for this dtype on this CPU
  }
  packed_ = std::move(packing);
  weight.set_data(at::empty({0}, weight.options()));
  return true;
}

#else

struct PackedMatmul {
  at::Tensor forward(const at::Tensor&) { throw Error("Linear: packed without oneDNN"); }
};

bool LinearImpl::pack_for_inference() { return false; }

#endif

// Under SkipParameterInit libtorch's constructor initializes a 1x1 stand-in; the real shapes follow.
LinearImpl::LinearImpl(const torch::nn::LinearOptions& given)
    : torch::nn::LinearImpl(SkipParameterInit::active() ? torch::nn::LinearOptions(1, 1).bias(given.bias()) : given) {
  if (!SkipParameterInit::active()) return;
  options = given;
  weight.set_data(torch::empty({given.out_features(), given.in_features()}));
  if (given.bias()) bias.set_data(torch::empty({given.out_features()}));
}

at::Tensor LinearImpl::base_forward(const at::Tensor& input) {
  if (!packed()) return torch::nn::LinearImpl::forward(input);
  if (at::GradMode::is_enabled() && input.requires_grad()) {
    throw Error("Linear: this layer was packed for inference and cannot record gradients");
  }
  return packed_->forward(input);
}

at::Tensor LinearImpl::forward(const at::Tensor& input) {
  auto output = base_forward(input);
  for (const auto& update : low_rank_) {
    output.add_(at::linear(at::linear(input, update.down), update.up), update.scale);
  }
  return output;
}

void LinearImpl::add_low_rank_update(LowRankUpdate update) {
  const auto in = options.in_features(), out = options.out_features();
  if (update.down.dim() != 2 || update.up.dim() != 2 || update.down.size(1) != in || update.up.size(0) != out ||
      update.up.size(1) != update.down.size(0)) {
    throw Error("a low-rank update of down " + c10::str(update.down.sizes()) + " and up " + c10::str(update.up.sizes()) +
                " does not fit a linear layer of " + std::to_string(in) + " -> " + std::to_string(out) + " features");
  }
  update.down = update.down.to(weight.options()).contiguous();
  update.up = update.up.to(weight.options()).contiguous();
  low_rank_.push_back(std::move(update));
}

int pack_linear_layers(torch::nn::Module& module) {
  int packed = 0;
  for (const auto& child : module.modules()) {
    if (auto* linear = dynamic_cast<LinearImpl*>(child.get())) packed += linear->pack_for_inference();
  }
  return packed;
}

}  // namespace diffuse::models
