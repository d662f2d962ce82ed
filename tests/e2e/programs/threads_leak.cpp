// e2e target: 4 threads, each leaking from its own function.
// Usage: e2e_threads_leak [N]  (default 500 blocks per thread, 256 bytes each)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

static void* volatile sink[4][100000];

extern "C" {
__attribute__((noinline)) void worker_alpha(int n) {
    for (int i = 0; i < n; ++i) {
        sink[0][i] = malloc(256);  // LEAK-ALPHA
        memset(sink[0][i], 1, 256);
    }
}
__attribute__((noinline)) void worker_beta(int n) {
    for (int i = 0; i < n; ++i) {
        sink[1][i] = malloc(256);  // LEAK-BETA
        memset(sink[1][i], 2, 256);
    }
}
__attribute__((noinline)) void worker_gamma(int n) {
    for (int i = 0; i < n; ++i) {
        sink[2][i] = malloc(256);  // LEAK-GAMMA
        memset(sink[2][i], 3, 256);
    }
}
__attribute__((noinline)) void worker_delta(int n) {
    for (int i = 0; i < n; ++i) {
        sink[3][i] = malloc(256);  // LEAK-DELTA
        memset(sink[3][i], 4, 256);
    }
}
}

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 500;
    if (n > 100000) n = 100000;
    std::thread a(worker_alpha, n), b(worker_beta, n), c(worker_gamma, n), d(worker_delta, n);
    a.join();
    b.join();
    c.join();
    d.join();
    printf("threads done %d\n", n);
    return 0;
}
