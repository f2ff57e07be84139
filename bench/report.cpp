#include "report.h"

#include <cstdio>

namespace diffuse::bench {

std::string format_table(const std::vector<Row>& rows) {
  std::string table = "| section | precision | ms | GFLOP | GFLOP/s | of ceiling | peak RSS MiB |\n"
                      "|---|---|---:|---:|---:|---:|---:|\n";
  char line[256];
  for (const auto& row : rows) {
    char work[32] = "", rate[32] = "", fraction[32] = "";
    if (row.gflop > 0) {
      std::snprintf(work, sizeof work, "%.1f", row.gflop);
      std::snprintf(rate, sizeof rate, "%.1f", row.gflops());
    }
    if (row.fraction() > 0) std::snprintf(fraction, sizeof fraction, "%.0f%%", 100 * row.fraction());
    std::snprintf(line, sizeof line, "| %s | %s | %.0f | %s | %s | %s | %.0f |\n", row.section.c_str(),
                  row.precision.c_str(), 1000 * row.seconds, work, rate, fraction, row.peak_rss_mib);
    table += line;
  }
  return table;
}

nlohmann::json rows_json(const std::vector<Row>& rows) {
  auto result = nlohmann::json::array();
  for (const auto& row : rows) {
    result.push_back({{"section", row.section},
                      {"precision", row.precision},
                      {"ms", 1000 * row.seconds},
                      {"gflop", row.gflop},
                      {"gflops", row.gflops()},
                      {"ceiling_gflops", row.ceiling_gflops},
                      {"fraction_of_ceiling", row.fraction()},
                      {"peak_rss_mib", row.peak_rss_mib}});
  }
  return result;
}

}  // namespace diffuse::bench
