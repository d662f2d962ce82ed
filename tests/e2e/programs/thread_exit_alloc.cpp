// Threads whose teardown allocates after the agent's per-thread caches are gone: the
// program's pthread key is created after the agent's, so its destructor runs later.
#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace {
pthread_key_t g_key;
std::mutex g_mu;
std::vector<void*> g_kept;

__attribute__((noinline)) void* teardown_alloc() { return malloc(48); }  // TEARDOWN-ALLOC

void on_thread_exit(void* value) {
  void* p = teardown_alloc();
  std::lock_guard<std::mutex> lock(g_mu);
  g_kept.push_back(p);
  free(value);
}

void* worker(void*) {
  pthread_setspecific(g_key, malloc(16));
  for (int i = 0; i < 1000; ++i) free(malloc(32 + i % 64));
  return nullptr;
}
}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 16;
  pthread_key_create(&g_key, on_thread_exit);
  for (int round = 0; round < threads; ++round) {
    pthread_t t;
    pthread_create(&t, nullptr, worker, nullptr);
    pthread_join(t, nullptr);
  }
  printf("kept %zu\n", g_kept.size());
  return 0;
}
