// e2e target: leaks a known number of app::Session objects from a known line.
// Usage: e2e_native_leak [N]   (default 1000). Prints SESSION_SIZE and "leaked N", exits 0.
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace app {

struct Session {
    long id;
    char name[40];
    double weights[9];
};  // the test takes sizeof(Session) from the SESSION_SIZE line the program prints

// Not inlined so that it shows up as its own frame.
__attribute__((noinline)) Session* leak_sessions(int n, std::vector<Session*>& kept) {
    Session* last = nullptr;
    for (int i = 0; i < n; ++i) {
        Session* s = new Session();  // LEAK-NEW
        s->id = i;
        snprintf(s->name, sizeof s->name, "session-%d", i);
        kept.push_back(s);
        last = s;
        Session* tmp = new Session();  // TRANSIENT-NEW
        tmp->id = -i;
        delete tmp;
    }
    return last;
}

}  // namespace app

int main(int argc, char** argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    // Held in a heap-allocated vector that is itself leaked so nothing is freed at exit.
    auto* kept = new std::vector<app::Session*>();
    kept->reserve(n);
    app::Session* last = app::leak_sessions(n, *kept);
    printf("SESSION_SIZE %zu\n", sizeof(app::Session));
    printf("leaked %d last=%ld\n", n, last ? last->id : -1L);
    return 0;
}
