#include "util/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace diffuse {

namespace fs = std::filesystem;

void write_file_atomically(const fs::path& path, const std::function<void(const fs::path& temporary)>& write) {
  // A hidden, unique name beside the target: the rename stays on one file system, two writers of the
  // same file (two server workers) never share a temporary, and listings do not show it.
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::string temporary = (folder / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(temporary.data());
  if (fd < 0) throw Error(path.string() + ": cannot create (" + std::strerror(errno) + ")");
  ::fchmod(fd, 0644);  // mkstemp makes 0600; the file should be as readable as any other
  ::close(fd);
  std::error_code ignored;
  try {
    write(temporary);
  } catch (...) {
    fs::remove(temporary, ignored);
    throw;
  }
  std::error_code error;
  fs::rename(temporary, path, error);
  if (error) {
    fs::remove(temporary, ignored);
    throw Error(path.string() + ": cannot replace the file (" + error.message() + ")");
  }
}

}  // namespace diffuse
