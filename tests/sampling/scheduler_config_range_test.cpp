// Regression from fuzz_json_config (docs/fuzzing.md): an integer field given as a float beyond int's
// range (num_train_timesteps: 1e110) was converted with undefined behaviour.
#include <gtest/gtest.h>

#include <string>

#include "sampling/sampling.h"
#include "util/error.h"

namespace diffuse::sampling {
namespace {

TEST(SchedulerConfigRange, IntegerFieldsOutsideIntAreRefused) {
  for (const char* text : {R"({"num_train_timesteps": 1e110})", R"({"steps_offset": -1e300})",
                           R"({"num_train_timesteps": 18446744073709551615})"}) {
    try {
      SchedulerConfig::from_json(nlohmann::json::parse(text));
      ADD_FAILURE() << "accepted " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("must be a whole number from -2147483648 to 2147483647, not"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(SchedulerConfig::from_json(nlohmann::json::parse(R"({"num_train_timesteps": 1000.0})")).num_train_timesteps,
            1000);
}

// A value that fits an int but would size the beta and sigma tables in gigabytes is named, not allocated.
TEST(SchedulerConfigRange, TrainTimestepsAreBounded) {
  for (const int steps : {1, 100001, 2000000000}) {
    try {
      SchedulerConfig::from_json({{"num_train_timesteps", steps}});
      ADD_FAILURE() << "accepted " << steps;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                "scheduler config: num_train_timesteps must be from 2 to 100000, got " + std::to_string(steps));
    }
  }
  EXPECT_EQ(SchedulerConfig::from_json({{"num_train_timesteps", 100000}}).num_train_timesteps, 100000);
}

}  // namespace
}  // namespace diffuse::sampling
