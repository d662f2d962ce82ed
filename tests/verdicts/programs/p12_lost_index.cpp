// p12: objects lost from an index. An order book keeps Order objects in a
// std::unordered_map index and expires the oldest ones; cancelled orders (every 4th) are
// erased from the index but never deleted, so nothing points at them any more.
// Expected verdict: leak; site = the `new Order` line (LEAK-SITE) in shop::OrderBook::open.
// Usage: p12_lost_index [DURATION_SECONDS]   (or env DURATION; default 8)
// Prints one `summary {json}` line at the end.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <unordered_map>

namespace shop {

struct Order {
    uint64_t id = 0;
    bool cancelled = false;
    double prices[16] = {};
    char note[1000] = {};
};

class OrderBook {
  public:
    __attribute__((noinline)) Order* open(uint64_t id) {
        Order* o = new Order();  // LEAK-SITE
        o->id = id;
        o->cancelled = id % 4 == 0;
        snprintf(o->note, sizeof o->note, "order %llu", static_cast<unsigned long long>(id));
        for (int k = 0; k < 16; ++k) o->prices[k] = 100.0 + k + id % 7;
        index_.emplace(id, o);
        fifo_.push_back(id);
        return o;
    }

    __attribute__((noinline)) size_t expire(size_t keep) {
        size_t lost = 0;
        while (fifo_.size() > keep) {
            uint64_t id = fifo_.front();
            fifo_.pop_front();
            auto it = index_.find(id);
            if (it == index_.end()) continue;
            Order* o = it->second;
            index_.erase(it);
            if (o->cancelled) {  // BUG: cancelled orders were "already handled" -- never deleted
                ++lost;
                continue;
            }
            delete o;
        }
        return lost;
    }

    size_t size() const { return index_.size(); }

  private:
    std::unordered_map<uint64_t, Order*> index_;
    std::deque<uint64_t> fifo_;
};

}  // namespace shop

int main(int argc, char** argv) {
    const char* env = getenv("DURATION");
    double duration = argc > 1 ? atof(argv[1]) : env ? atof(env) : 8.0;
    const int per_tick = 10;
    const auto tick = std::chrono::milliseconds(5);  // 2000 orders/s
    shop::OrderBook book;
    uint64_t next = 0;
    size_t lost = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0;; ++i) {
        auto target = t0 + i * tick;
        if (std::chrono::duration<double>(target - t0).count() >= duration) break;
        std::this_thread::sleep_until(target);
        for (int k = 0; k < per_tick; ++k) book.open(next++);
        lost += book.expire(500);
    }
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("summary {\"program\": \"p12_lost_index\", \"orders\": %llu, \"lost\": %zu, \"live\": %zu, "
           "\"order_size\": %zu, \"elapsed_s\": %.3f, \"leak_bytes_per_s\": %.1f}\n",
           static_cast<unsigned long long>(next), lost, book.size(), sizeof(shop::Order), elapsed,
           lost * sizeof(shop::Order) / elapsed);
    return 0;
}
