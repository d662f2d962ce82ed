// e2e target for attach's safe point (docs/attach.md, "Why a safe point"). Prints "ready",
// parks until a file `stop` exists, prints "done". How it parks is argv[1]:
//   pointers  the parked frame holds function pointers to malloc and free in its locals (as an
//             allocator table copied onto the stack would): words that point into the
//             allocator but are not frames of the call chain, so the thread may be borrowed.
//   iterate   the main thread parks inside a dl_iterate_phdr callback: dl_iterate_phdr holds
//             the loader's lock, so the thread must never be borrowed.
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

static bool exists(const char* p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static void wait_for_stop() {
  while (!exists("stop")) usleep(2000);
}

__attribute__((noinline)) static void park_with_allocator_pointers() {
  volatile uintptr_t table[32];
  for (int i = 0; i < 32; ++i)
    table[i] = i % 2 ? reinterpret_cast<uintptr_t>(&free) + 4 : reinterpret_cast<uintptr_t>(&malloc) + 4;
  printf("ready\n");
  fflush(stdout);
  wait_for_stop();
  if (table[0] == 0) abort();  // keeps the table live across the wait
}

static int park_in_callback(struct dl_phdr_info*, size_t, void* done) {
  if (*static_cast<bool*>(done)) return 0;
  *static_cast<bool*>(done) = true;
  printf("ready\n");
  fflush(stdout);
  wait_for_stop();
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  if (strcmp(argv[1], "pointers") == 0) {
    park_with_allocator_pointers();
  } else if (strcmp(argv[1], "iterate") == 0) {
    bool done = false;
    dl_iterate_phdr(park_in_callback, &done);
  } else {
    return 2;
  }
  printf("done\n");
  return 0;
}
