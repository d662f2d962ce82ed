// A native daemon for findleaks (tests/e2e/test_findleaks_native.py): every round it keeps one
// Record in a global vector and loses another (its only pointer dropped: a missing delete),
// until a file "stop" appears in its working directory; then it prints how many it kept.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

struct Record {
  char name[40];
  std::vector<int> values;
};

static std::vector<Record*> g_kept;

__attribute__((noinline)) Record* make_record(int i) {
  Record* r = new Record;  // MAKE-RECORD
  snprintf(r->name, sizeof r->name, "record-%d", i);
  r->values.assign(16, i);
  return r;
}

__attribute__((noinline)) void serve_round(int i) {
  g_kept.push_back(make_record(i));
  Record* lost = make_record(-i);
  lost->values.push_back(1);  // used, then forgotten
}

int main() {
  printf("ready\n");
  fflush(stdout);
  int i = 0;
  while (access("stop", F_OK) != 0) {
    serve_round(++i);
    usleep(2000);
  }
  printf("done %zu\n", g_kept.size() > 0 ? static_cast<size_t>(1) : static_cast<size_t>(0));
  return 0;
}
