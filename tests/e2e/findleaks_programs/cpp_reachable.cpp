// findleaks case: a C++ program that keeps everything reachable: nothing is lost.
//
// Kept (reachable, never freed):
//   a std::map<int, std::string> new'd and held by a global raw pointer;
//   a std::unordered_map<std::string, std::vector<int>> held by a function-local static pointer;
//   new Widget[4] (Widget has a destructor, so the block starts with a count and the program
//   holds an interior pointer: valgrind's "newarray" heuristic, an interior pointer for leakscope);
//   a C object (bases A and B) held only as a B* (an interior pointer: valgrind's
//   "multipleinheritance" heuristic);
//   two shared_ptr nodes pointing to each other, held by a new'd std::shared_ptr in a global;
//   a std::list<std::string> and a std::deque<long> new'd and held by globals;
//   a std::string built with std::ostringstream, new'd and held by a global.
// Freed before the check: a global std::vector<std::string> (static destructor), a
//   thread_local std::vector<int> (destroyed at exit), a caught exception, temporaries.
// EXPECT: definitely 0/0 indirectly 0/0
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "fl_common.h"

namespace app {

struct Widget {
    long id = 0;
    char tag[24] = {};
    ~Widget() { id = -1; }
};

struct A {
    virtual ~A() = default;
    long a = 1;
};
struct B {
    virtual ~B() = default;
    long b = 2;
};
struct C : A, B {
    long c = 3;
};

struct Node {
    std::shared_ptr<Node> other;
    std::string label;
};

std::vector<std::string> g_names;                      // destroyed at exit
thread_local std::vector<int> t_scratch;               // destroyed at exit
std::map<int, std::string>* g_map;
Widget* g_widgets;
B* g_b;
std::shared_ptr<Node>* g_cycle;
std::list<std::string>* g_list;
std::deque<long>* g_deque;
std::string* g_text;

__attribute__((noinline)) std::unordered_map<std::string, std::vector<int>>& cache() {
    static auto* c = new std::unordered_map<std::string, std::vector<int>>();
    return *c;
}

__attribute__((noinline)) void build() {
    for (int i = 0; i < 8; i++) g_names.push_back("global-name-" + std::to_string(i) + "-long-enough");
    t_scratch.assign(100, 7);
    g_map = new std::map<int, std::string>();
    for (int i = 0; i < 6; i++) (*g_map)[i] = "map-value-" + std::to_string(i) + "-long-enough-for-heap";
    for (int i = 0; i < 4; i++) cache()["cache-key-" + std::to_string(i) + "-long-enough"].assign(i + 3, i);
    g_widgets = new Widget[4];
    g_b = new C();
    auto n1 = std::make_shared<Node>();
    auto n2 = std::make_shared<Node>();
    n1->label = "first-node-label-long-enough";
    n2->label = "second-node-label-long-enough";
    n1->other = n2;
    n2->other = n1;
    g_cycle = new std::shared_ptr<Node>(n1);
    g_list = new std::list<std::string>();
    for (int i = 0; i < 5; i++) g_list->push_back("list-item-" + std::to_string(i) + "-long-enough-too");
    g_deque = new std::deque<long>();
    for (long i = 0; i < 300; i++) g_deque->push_back(i);
    std::ostringstream out;
    out << "text built with ostringstream: " << 12345 << ' ' << 6.5;
    g_text = new std::string(out.str());
    try {
        throw std::runtime_error("an exception that is caught and freed");
    } catch (const std::exception&) {
    }
}

}  // namespace app

int main() {
    app::build();
    fl_scrub_stack();
    return 0;
}
