// p13: control. A native "request processor" that allocates and frees a lot -- strings,
// vectors, a bounded LRU of session objects, a std::map that is trimmed -- and keeps a
// bounded working set. Nothing is leaked.
// Expected verdict: no-leak.
// Usage: p13_native_control [DURATION_SECONDS]   (or env DURATION; default 8)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ctl {

struct Session {
    uint64_t id;
    std::string user;
    std::vector<double> history;
};

class Lru {
  public:
    explicit Lru(size_t cap) : cap_(cap) {}
    __attribute__((noinline)) Session& get(uint64_t id) {
        auto it = map_.find(id);
        if (it != map_.end()) {
            order_.splice(order_.begin(), order_, it->second);
            return *it->second->get();
        }
        order_.push_front(std::make_unique<Session>(Session{id, "user-" + std::to_string(id), {}}));
        order_.front()->history.assign(64, 1.0);
        map_[id] = order_.begin();
        if (order_.size() > cap_) {
            map_.erase(order_.back()->id);
            order_.pop_back();
        }
        return *order_.front();
    }

  private:
    size_t cap_;
    std::list<std::unique_ptr<Session>> order_;
    std::unordered_map<uint64_t, std::list<std::unique_ptr<Session>>::iterator> map_;
};

__attribute__((noinline)) size_t process(uint64_t n, std::map<uint64_t, std::string>& recent) {
    std::vector<std::string> parts;
    for (int k = 0; k < 20; ++k) parts.push_back(std::string(200 + (n + k) % 300, 'a' + k % 26));
    std::vector<char> body(16384 + (n % 8) * 4096, 'x');
    recent[n] = parts[n % parts.size()];
    while (recent.size() > 1000) recent.erase(recent.begin());
    size_t total = body.size();
    for (auto& p : parts) total += p.size();
    return total;
}

}  // namespace ctl

int main(int argc, char** argv) {
    const char* env = getenv("DURATION");
    double duration = argc > 1 ? atof(argv[1]) : env ? atof(env) : 8.0;
    const auto tick = std::chrono::milliseconds(5);
    ctl::Lru lru(2000);
    std::map<uint64_t, std::string> recent;
    uint64_t n = 0;
    size_t total = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0;; ++i) {
        auto target = t0 + i * tick;
        if (std::chrono::duration<double>(target - t0).count() >= duration) break;
        std::this_thread::sleep_until(target);
        for (int k = 0; k < 10; ++k, ++n) {
            total += ctl::process(n, recent);
            total += lru.get((n * 2654435761u) % 5000).history.size();
        }
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("summary {\"program\": \"p13_native_control\", \"requests\": %llu, \"bytes\": %zu, "
           "\"elapsed_s\": %.3f, \"leak_bytes_per_s\": 0}\n",
           static_cast<unsigned long long>(n), total, elapsed);
    return 0;
}
