// e2e target for `leakscope attach` on a native program: prints "ready", then while a file
// `leak.on` exists leaks one Record per millisecond from the marked line, until a
// file `stop` exists; prints "done".
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

namespace app {
struct Record {
  long id;
  char payload[120];
};
__attribute__((noinline)) Record* make_record(long i) {
  return new Record{i, {}};  // ATTACH-LEAK
}
}  // namespace app

static bool exists(const char* p) {
  struct stat st;
  return stat(p, &st) == 0;
}

int main() {
  std::vector<app::Record*>* kept = new std::vector<app::Record*>();
  printf("ready\n");
  fflush(stdout);
  for (long i = 0; !exists("stop"); ++i) {
    if (exists("leak.on")) kept->push_back(app::make_record(i));
    usleep(1000);
  }
  printf("done\n");
  return 0;
}
