// Option validation and scheduler config parsing: failures name the option and the valid values.
#include <gtest/gtest.h>

#include "sampling/sampling.h"
#include "util/error.h"

namespace diffuse::sampling {
namespace {

std::string error_of(const SamplerOptions& options) {
  try {
    validate(options);
  } catch (const diffuse::InvalidParameter& error) {
    return error.what();
  }
  return "";
}

template <typename Parse>
std::string parse_error(Parse parse, const std::string& name) {
  try {
    parse(name);
  } catch (const diffuse::InvalidParameter& error) {
    return error.what();
  }
  return "";
}

TEST(SamplerValidate, AcceptsTheDefaultsAndEverySampler) {
  EXPECT_NO_THROW(validate(SamplerOptions{}));
  for (const auto& [name, description] : sampler_names()) {
    SamplerOptions options;
    options.sampler = name;
    EXPECT_NO_THROW(validate(options)) << name;
    EXPECT_FALSE(description.empty());
  }
}

TEST(SamplerValidate, NamesTheRequiredSamplers) {
  std::vector<std::string> names;
  for (const auto& [name, description] : sampler_names()) names.push_back(name);
  for (const auto* required : {"euler", "euler_a", "ddim", "dpm++2m", "dpm++2m_sde", "lms", "heun", "dpm2", "dpm2_a",
                               "plms", "dpm++2s", "dpm++2s_a", "dpm++sde", "unipc", "deis", "lcm", "tcd"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), required), names.end()) << required;
  }
}

// Refused where the name is chosen: a SamplerChoice is always a registered sampler.
TEST(SamplerValidate, UnknownSamplerListsTheValidOnes) {
  std::string error;
  try {
    SamplerOptions options;
    options.sampler = "foo";
  } catch (const diffuse::InvalidParameter& e) {
    error = e.what();
  }
  EXPECT_EQ(error,
            "sampler: 'foo' is not one of euler, euler_a, heun, lms, ddim, dpm++2m, dpm++2m_sde, dpm2, "
            "dpm2_a, plms, dpm++2s, dpm++2s_a, dpm++sde, unipc, deis, lcm, tcd");
}

TEST(SamplerOptionNames, ParseAndNameEveryValue) {
  EXPECT_EQ(parse_error(parse_sigma_schedule, "cosine"),
            "schedule: 'cosine' is not one of default, karras, exponential, sgm_uniform");
  EXPECT_EQ(parse_error(parse_spacing, "uniform"), "timestep_spacing: 'uniform' is not one of leading, trailing, linspace");
  EXPECT_EQ(parse_error(parse_prediction, "sample"), "prediction: 'sample' is not one of epsilon, v_prediction");
  for (const auto& [name, description] : schedule_names()) EXPECT_EQ(name_of(parse_sigma_schedule(name)), name);
  for (const auto* name : {"leading", "trailing", "linspace"}) EXPECT_EQ(name_of(parse_spacing(name)), name);
  for (const auto* name : {"epsilon", "v_prediction"}) EXPECT_EQ(name_of(parse_prediction(name)), name);
  EXPECT_EQ(parse_sigma_schedule("sgm_uniform"), SigmaSchedule::SgmUniform);
  EXPECT_EQ(parse_spacing("trailing"), Spacing::Trailing);
  EXPECT_EQ(parse_prediction("v_prediction"), Prediction::VPrediction);
}

TEST(SamplerValidate, StepsAndEta) {
  SamplerOptions options;
  options.steps = 0;
  EXPECT_EQ(error_of(options), "steps: must be at least 1, got 0");
  options = {};
  options.eta = -0.5;
  EXPECT_NE(error_of(options).find("eta: must be 0 or more"), std::string::npos);
  options.eta = 1;
  EXPECT_EQ(error_of(options), "eta: applies only to samplers ddim, tcd, not to 'euler'");
  options.sampler = "ddim";
  EXPECT_EQ(error_of(options), "");
  options.eta = 1.5;
  EXPECT_EQ(error_of(options), "");  // DDIM's eta may exceed 1
  options.sampler = "tcd";
  EXPECT_EQ(error_of(options), "eta: sampler 'tcd' takes eta from 0 to 1, got 1.5");
  options.eta = 1;
  EXPECT_EQ(error_of(options), "");
}

TEST(SamplerValidate, RespacingSchedulesOnlyForSigmaSamplers) {
  for (const auto schedule : {SigmaSchedule::Karras, SigmaSchedule::Exponential, SigmaSchedule::SgmUniform}) {
    for (const auto* sampler : {"ddim", "plms", "lcm", "tcd"}) {
      SamplerOptions options;
      options.sampler = sampler;
      options.schedule = schedule;
      EXPECT_EQ(error_of(options), "schedule: '" + name_of(schedule) + "' is not available for sampler '" + sampler +
                                       "'; use 'default'");
    }
    SamplerOptions options;
    options.sampler = "dpm2";
    options.schedule = schedule;
    EXPECT_EQ(error_of(options), "");
  }
}

TEST(SamplerValidate, TooManyStepsForTheTrainingSchedule) {
  SamplerOptions options;
  options.steps = 1000;
  EXPECT_EQ(error_of(options), "");  // without a model, any step count above 0
  try {
    validate_for(options, SchedulerConfig{});
    ADD_FAILURE() << "1000 steps of a 1000-timestep schedule passed";
  } catch (const diffuse::InvalidParameter& error) {
    EXPECT_EQ(error.parameter(), "steps");
    EXPECT_STREQ(error.what(), "steps: must be below the model's 1000 training timesteps, got 1000");
  }
  options.steps = 999;
  EXPECT_NO_THROW(validate_for(options, SchedulerConfig{}));
}

TEST(SamplerDisplayName, AsAutomatic1111NamesIt) {
  SamplerOptions options;
  options.sampler = "dpm++2m";
  options.schedule = SigmaSchedule::Karras;
  EXPECT_EQ(display_name(options), "DPM++ 2M Karras");
  options.sampler = "euler_a";
  options.schedule = SigmaSchedule::Default;
  EXPECT_EQ(display_name(options), "Euler a");
  options.sampler = "dpm++2m_sde";
  options.schedule = SigmaSchedule::SgmUniform;
  EXPECT_EQ(display_name(options), "DPM++ 2M SDE SGM Uniform");
  for (const auto& [name, description] : sampler_names()) {
    options.sampler = name;
    options.schedule = SigmaSchedule::Default;
    EXPECT_FALSE(display_name(options).empty()) << name;
  }
}

TEST(SchedulerConfigJson, AbsentFieldsTakeDiffusersDefaults) {
  const auto config = SchedulerConfig::from_json({{"_class_name", "PNDMScheduler"}, {"skip_prk_steps", true}});
  EXPECT_EQ(config.num_train_timesteps, 1000);
  EXPECT_DOUBLE_EQ(config.beta_start, 0.0001);
  EXPECT_DOUBLE_EQ(config.beta_end, 0.02);
  EXPECT_EQ(config.beta_schedule, "linear");
  EXPECT_EQ(config.steps_offset, 0);
  EXPECT_EQ(config.prediction, Prediction::Epsilon);
  EXPECT_FALSE(config.timestep_spacing.has_value());
  EXPECT_FALSE(config.clip_sample.has_value());
  EXPECT_FALSE(config.set_alpha_to_one.has_value());
}

TEST(SchedulerConfigJson, ReadsTheFieldsThatMatter) {
  const auto config = SchedulerConfig::from_json({{"beta_start", 0.00085},
                                                  {"beta_end", 0.012},
                                                  {"beta_schedule", "scaled_linear"},
                                                  {"trained_betas", nullptr},
                                                  {"prediction_type", "v_prediction"},
                                                  {"timestep_spacing", "trailing"},
                                                  {"steps_offset", 1},
                                                  {"clip_sample", false},
                                                  {"set_alpha_to_one", false},
                                                  {"use_karras_sigmas", true},
                                                  {"rescale_betas_zero_snr", true}});
  EXPECT_EQ(config.prediction, Prediction::VPrediction);
  EXPECT_EQ(config.timestep_spacing, Spacing::Trailing);
  EXPECT_EQ(config.steps_offset, 1);
  EXPECT_EQ(config.clip_sample, false);
  EXPECT_EQ(config.set_alpha_to_one, false);
  EXPECT_TRUE(config.use_karras_sigmas);
  EXPECT_TRUE(config.rescale_betas_zero_snr);
  EXPECT_TRUE(config.trained_betas.empty());
  const auto trained = SchedulerConfig::from_json({{"trained_betas", {0.1, 0.2, 0.3}}, {"num_train_timesteps", 3}});
  EXPECT_EQ(trained.trained_betas, (std::vector<double>{0.1, 0.2, 0.3}));
}

TEST(SchedulerConfigJson, RejectsWhatItCannotHonour) {
  EXPECT_THROW(SchedulerConfig::from_json({{"prediction_type", "sample"}}), diffuse::Error);
  EXPECT_THROW(SchedulerConfig::from_json({{"thresholding", true}}), diffuse::Error);
  EXPECT_THROW(SchedulerConfig::from_json({{"steps_offset", "one"}}), diffuse::Error);
  EXPECT_THROW(SchedulerConfig::from_json({{"timestep_spacing", "uniform"}}), diffuse::Error);
  EXPECT_THROW(SchedulerConfig::from_json(nlohmann::json::array()), diffuse::Error);
  SchedulerConfig unknown_betas;
  unknown_betas.beta_schedule = "cubic";
  SamplerOptions options;
  EXPECT_THROW(make_schedule(unknown_betas, options), diffuse::Error);
}

}  // namespace
}  // namespace diffuse::sampling

namespace diffuse::sampling {
namespace {

// AUTOMATIC1111's scheduler names and the sampler-name suffixes come from one table.
TEST(A1111Schedules, ParseAndNameFromOneTable) {
  EXPECT_EQ(parse_a1111_schedule(""), SigmaSchedule::Default);
  EXPECT_EQ(parse_a1111_schedule("Automatic"), SigmaSchedule::Default);
  EXPECT_EQ(parse_a1111_schedule("Uniform"), SigmaSchedule::Default);
  EXPECT_EQ(parse_a1111_schedule("karras"), SigmaSchedule::Karras);
  EXPECT_EQ(parse_a1111_schedule("SGM Uniform"), SigmaSchedule::SgmUniform);
  EXPECT_EQ(parse_a1111_schedule("sgm_uniform"), SigmaSchedule::SgmUniform);
  EXPECT_EQ(parse_a1111_schedule("Exponential"), SigmaSchedule::Exponential);
  EXPECT_EQ(parse_error(parse_a1111_schedule, "Beta"),
            "scheduler: 'Beta' is not one of Automatic, Karras, Exponential, SGM Uniform");
  SamplerOptions options;
  options.sampler = "dpm++2m";
  for (const char* name : {"Karras", "Exponential", "SGM Uniform"}) {
    options.schedule = parse_a1111_schedule(name);
    EXPECT_EQ(display_name(options), std::string("DPM++ 2M ") + name);
  }
}

}  // namespace
}  // namespace diffuse::sampling
