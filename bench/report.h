// The benchmark's results: one row per timed section, printed as a table and as JSON.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace diffuse::bench {

struct Row {
  std::string section;    // "unet cfg 512x512"
  std::string precision;  // "fp32" / "bf16"
  double seconds = 0;
  double gflop = 0;          // work counted from the config; 0 where not meaningful (loading)
  double ceiling_gflops = 0; // the rate this section is compared with (same precision)
  double peak_rss_mib = 0;   // peak resident memory during the section
  double gflops() const { return gflop > 0 && seconds > 0 ? gflop / seconds : 0; }
  double fraction() const { return ceiling_gflops > 0 ? gflops() / ceiling_gflops : 0; }
};

std::string format_table(const std::vector<Row>& rows);
nlohmann::json rows_json(const std::vector<Row>& rows);

}  // namespace diffuse::bench
