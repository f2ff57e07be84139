#include <algorithm>
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "models/kernel_options.h"
#include "util/error.h"

int main(int argc, char** argv) {
  try {
    diffuse::models::limit_libraries_to_cpu_class();
  } catch (const diffuse::Error& e) {
    std::fprintf(stderr, "diffuse: error: %s\n", e.what());
    return 1;
  }
  CLI::App app{"diffuse: Stable Diffusion text-to-image on your own machine"};
  app.require_subcommand(1);
  diffuse::cli::add_generate_command(app);
  diffuse::cli::add_samplers_command(app);
  diffuse::cli::add_train_command(app, argc, argv);
  diffuse::cli::add_inspect_command(app);
  diffuse::cli::add_tokens_command(app);
  diffuse::cli::add_image_numbers_command(app);
  diffuse::cli::add_convert_command(app);
  diffuse::cli::add_serve_command(app);
  diffuse::cli::add_preprocess_command(app);
  diffuse::cli::add_upscale_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const diffuse::InvalidParameter& e) {
    // The library names parameters as the request does (cfg_scale); here they are flags (--cfg-scale).
    std::string flag = "--" + e.parameter();
    std::replace(flag.begin(), flag.end(), '_', '-');
    std::fprintf(stderr, "diffuse: error: %s: %s\n", flag.c_str(), e.problem().c_str());
    return 1;
  } catch (const diffuse::Error& e) {
    std::fprintf(stderr, "diffuse: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "diffuse: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
