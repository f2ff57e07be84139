// Whole files or none: a failed write leaves the old file (or nothing) and no temporary behind.
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "support/temp_dir.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse {
namespace {

namespace fs = std::filesystem;

class AtomicFile : public test::TempDirTest {
 protected:
  std::string contents(const fs::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  size_t entries() { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }
};

TEST_F(AtomicFile, ReplacesTheFileWhole) {
  const auto path = dir_ / "a.txt";
  std::ofstream(path) << "old";
  fs::path used;
  write_file_atomically(path, [&](const fs::path& temporary) {
    used = temporary;
    EXPECT_EQ(temporary.parent_path(), dir_);  // same file system: the rename cannot copy
    EXPECT_EQ(contents(path), "old");          // untouched while the new one is written
    std::ofstream(temporary) << "new";
  });
  EXPECT_EQ(contents(path), "new");
  EXPECT_FALSE(fs::exists(used));
  EXPECT_EQ(entries(), 1u);
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::others_read, fs::perms::others_read);
}

TEST_F(AtomicFile, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  const auto path = dir_ / "a.txt";
  std::ofstream(path) << "old";
  EXPECT_THROW(write_file_atomically(path,
                                     [&](const fs::path& temporary) {
                                       std::ofstream(temporary) << "half";
                                       throw Error("disk full");
                                     }),
               Error);
  EXPECT_EQ(contents(path), "old");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFile, AMissingFolderIsNamed) {
  const auto path = dir_ / "absent" / "a.txt";
  try {
    write_file_atomically(path, [](const fs::path&) {});
    ADD_FAILURE() << "wrote into a missing folder";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(path.string() + ": cannot create"), std::string::npos) << error.what();
  }
}

TEST_F(AtomicFile, JsonFilesMayHoldPythonsInfinityAndNaN) {
  const auto path = dir_ / "scheduler_config.json";
  std::ofstream(path) << R"({"lambda_min_clipped": -Infinity, "x": NaN, "name": "-Infinity"})";
  const auto json = read_json_file(path);
  EXPECT_EQ(json.at("lambda_min_clipped").get<double>(), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(json.at("x").is_null());
  EXPECT_EQ(json.at("name"), "-Infinity");  // inside a string it stays text
}

}  // namespace
}  // namespace diffuse
