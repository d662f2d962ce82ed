// See output.h.
#include "cli/output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace leakscope::cli {

namespace {

bool write_all(int fd, const std::string& doc) {
  size_t off = 0;
  while (off < doc.size()) {
    ssize_t n = write(fd, doc.data() + off, doc.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int emit_document(const std::string& doc, const std::string& output, bool binary) {
  if (output.empty() || output == "-") {
    if (binary && isatty(STDOUT_FILENO)) {
      fprintf(stderr, "leakscope: this format is binary: write it to a file with -o FILE, or redirect stdout\n");
      return 2;
    }
    fflush(stdout);
    if (!write_all(STDOUT_FILENO, doc)) {
      fprintf(stderr, "leakscope: cannot write to stdout: %s\n", strerror(errno));
      return 2;
    }
    return 0;
  }
  int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST)
      fprintf(stderr, "leakscope: %s already exists; choose another name with -o\n", output.c_str());
    else
      fprintf(stderr, "leakscope: cannot create %s: %s\n", output.c_str(), strerror(errno));
    return 2;
  }
  const bool ok = write_all(fd, doc);
  const int err = errno;
  if (close(fd) != 0 || !ok) {
    fprintf(stderr, "leakscope: cannot write %s: %s\n", output.c_str(), strerror(ok ? errno : err));
    unlink(output.c_str());
    return 2;
  }
  return 0;
}

}  // namespace leakscope::cli
