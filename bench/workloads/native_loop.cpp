// native_loop: a C++ malloc/free loop. Usage: native_loop [PAIRS]  (default 5,000,000)
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
    long n = argc > 1 ? std::atol(argv[1]) : 5000000L;
    unsigned long sum = 0;
    for (long i = 0; i < n; ++i) {
        std::size_t sz = 16 + static_cast<std::size_t>(i % 64) * 8;
        auto* p = static_cast<unsigned char*>(std::malloc(sz));
        if (!p) return 1;
        p[0] = static_cast<unsigned char>(i);
        p[sz - 1] = 1;
        sum += p[0] + p[sz - 1];
        std::free(p);
    }
    // Keep the result observable so the loop is not optimised away.
    if (sum == 42) std::puts("");
    return 0;
}
