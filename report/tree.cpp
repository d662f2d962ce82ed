// See tree.h.
#include "report/tree.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include "capture/reader.h"
#include "report/sites.h"

namespace leakscope::report {

namespace {

std::string dir_of(const std::string& path) {
  size_t s = path.rfind('/');
  return s == std::string::npos ? "." : s == 0 ? "/" : path.substr(0, s);
}
std::string base_of(const std::string& path) {
  size_t s = path.rfind('/');
  return s == std::string::npos ? path : path.substr(s + 1);
}

// STEM.PID.lsc or STEM.PID-N.lsc (agent/fork_follow.cpp names them so).
bool is_child_name(const std::string& name, const std::string& stem) {
  if (name.size() < stem.size() + 6 || name.compare(0, stem.size(), stem) != 0 || name[stem.size()] != '.') return false;
  if (name.compare(name.size() - 4, 4, ".lsc") != 0) return false;
  const std::string rest = name.substr(stem.size() + 1, name.size() - stem.size() - 5);
  size_t i = 0;
  while (i < rest.size() && isdigit(static_cast<unsigned char>(rest[i]))) ++i;
  if (i == 0) return false;
  if (i == rest.size()) return true;
  if (rest[i] != '-') return false;
  size_t j = i + 1;
  while (j < rest.size() && isdigit(static_cast<unsigned char>(rest[j]))) ++j;
  return j == rest.size() && j > i + 1;
}

// One site across processes: by symbolized frames and layer, native frames without source by
// module + offset (as `diff` matches two captures: an exec'd image has its own addresses).
std::string site_key(const std::string& layer, const std::vector<FrameOut>& frames) {
  return frames_key(layer, frames, SiteKey::kModuleOffset);
}

std::string command_of(const std::vector<std::string>& argv) {
  std::string c;
  for (const auto& a : argv) c += (c.empty() ? "" : " ") + a;
  return c;
}

// How a process ended: as its parent reaped it ("exit 3", "signal 15": also for one killed
// without a clean stop), else its own STOP reason.
std::string end_of(const Report& p, const std::map<uint64_t, const Report*>& by_pid) {
  if (auto it = by_pid.find(p.parent_pid); it != by_pid.end())
    if (auto e = it->second->child_exits.find(p.pid); e != it->second->child_exits.end()) return e->second;
  return p.stop_reason.empty() ? "no clean stop" : p.stop_reason;
}

ProcessOut process_of(const Report& p, const Report& root, const std::map<uint64_t, const Report*>& by_pid) {
  ProcessOut o;
  o.pid = p.pid;
  o.parent_pid = p.parent_pid;
  o.capture = p.path;
  o.argv = p.argv;
  o.start_s = p.start_unix_ns >= root.start_unix_ns ? static_cast<double>(p.start_unix_ns - root.start_unix_ns) / 1e9 : 0;
  o.end_s = o.start_s + p.duration_s;
  o.complete = p.complete;
  o.end = end_of(p, by_pid);
  o.verdict = p.verdict;
  o.peak_bytes = p.peak_bytes;
  o.live_bytes = p.live_bytes;
  o.inherited_bytes = p.inherited_bytes;
  if (p.timeline.size() >= 2) o.growth_bytes = p.timeline.back().live - p.timeline.front().live;
  for (const auto& l : p.leaks) o.leak_rate_bytes_per_s += l.rate_bytes_per_s;
  return o;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Siblings with one command: at least 3, most of them growing by 1 MiB or more.
std::vector<RecycledOut> recycled_workers(const std::vector<ProcessOut>& ps) {
  std::map<std::pair<uint64_t, std::string>, std::vector<const ProcessOut*>> groups;
  for (size_t i = 1; i < ps.size(); ++i) groups[{ps[i].parent_pid, command_of(ps[i].argv)}].push_back(&ps[i]);
  std::vector<RecycledOut> out;
  for (const auto& [key, members] : groups) {
    if (members.size() < 3) continue;
    std::vector<double> growth, life;
    size_t growing = 0;
    for (const ProcessOut* p : members) {
      growth.push_back(p->growth_bytes);
      life.push_back(p->end_s - p->start_s);
      growing += p->growth_bytes >= (1 << 20);
    }
    if (growing * 2 <= members.size()) continue;
    out.push_back({key.first, key.second, members.size(), growing, median(growth), median(life)});
  }
  return out;
}

template <typename T>
void add_share(std::vector<T>& merged, std::unordered_map<std::string, size_t>& index, const T& e, uint64_t pid,
               double rate) {
  const std::string k = site_key(e.layer, e.frames);
  auto [it, fresh] = index.emplace(k, merged.size());
  if (fresh) {
    merged.push_back(e);
    merged.back().processes.clear();
  } else {
    T& m = merged[it->second];
    m.bytes += e.bytes;
    m.count += e.count;
    if constexpr (std::is_same_v<T, LeakOut>) {
      m.rate_bytes_per_s += e.rate_bytes_per_s;
      m.rate_count_per_s += e.rate_count_per_s;
      m.growth_bytes += e.growth_bytes;
      m.confidence = std::max(m.confidence, e.confidence);
    }
  }
  merged[it->second].processes.push_back({pid, static_cast<double>(e.bytes), rate});
}

}  // namespace

namespace {
// Header and INFO records of the first chunk: enough to place a capture in a tree.
struct FirstChunk : capture::Visitor {
  std::map<std::string, std::string> infos;
  struct Done {};
  void info(std::string&& k, std::string&& v) override { infos.emplace(std::move(k), std::move(v)); }
  void chunk_end() override { throw Done{}; }
};

TreeMember read_member(const std::string& path) {
  capture::Reader reader(path);
  reader.set_skip_parent(true);
  FirstChunk f;
  try {
    reader.read_all(f);
  } catch (const FirstChunk::Done&) {
  }
  TreeMember m;
  m.path = path;
  m.pid = reader.header().pid;
  m.start_unix_ns = reader.header().start_time_ns;
  if (auto it = f.infos.find("parent_capture"); it != f.infos.end()) m.parent_capture = it->second;
  if (auto it = f.infos.find("parent_pid"); it != f.infos.end()) m.parent_pid = std::strtoull(it->second.c_str(), nullptr, 10);
  return m;
}
}  // namespace

std::vector<TreeMember> tree_members(const std::string& root_path, std::vector<std::string>* unreadable,
                                     size_t* not_read) {
  const std::string dir = dir_of(root_path), root_name = base_of(root_path);
  std::string stem = root_name;
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".lsc") == 0) stem.resize(stem.size() - 4);
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (is_child_name(e->d_name, stem)) names.push_back(e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  if (names.size() > kMaxTreeCaptures) {
    if (not_read) *not_read = names.size() - kMaxTreeCaptures;
    names.resize(kMaxTreeCaptures);
  }
  TreeMember root;
  try {
    root = read_member(root_path);
  } catch (const std::exception&) {
    return {};
  }
  std::map<std::string, TreeMember> all;  // base name -> member
  for (const auto& n : names) {
    // Only regular files: a FIFO or a link planted beside the capture must not hang or lead the
    // report elsewhere.
    const std::string path = root_path.find('/') == std::string::npos ? n : dir + "/" + n;
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      if (unreadable) unreadable->push_back(n + ": not a regular file");
      continue;
    }
    try {
      all.emplace(n, read_member(path));
    } catch (const std::exception& e) {
      if (unreadable) unreadable->push_back(n + ": " + e.what());
    }
  }
  // Each link must name the process that wrote the capture it names (a capture left by
  // another run under the same name is not this tree's).
  auto in_tree = [&](const std::string& name) {
    std::string cur = name;
    for (int depth = 0; depth < 64; ++depth) {
      const TreeMember& c = all.at(cur);
      const TreeMember* p = nullptr;
      if (c.parent_capture == root_name) {
        p = &root;
      } else if (auto it = all.find(c.parent_capture); it != all.end()) {
        p = &it->second;
      }
      if (!p || p->pid != c.parent_pid || p->start_unix_ns > c.start_unix_ns) return false;
      if (p == &root) return true;
      cur = c.parent_capture;
    }
    return false;
  };
  std::vector<TreeMember> out;
  for (const auto& [name, m] : all)
    if (in_tree(name)) out.push_back(m);
  std::sort(out.begin(), out.end(), [](const TreeMember& a, const TreeMember& b) { return a.start_unix_ns < b.start_unix_ns; });
  return out;
}

std::string tree_capture_of(const std::string& root_path, uint64_t pid) {
  const TreeMember root = read_member(root_path);
  if (root.pid == pid) return root_path;
  std::string found;
  for (const auto& m : tree_members(root_path))
    if (m.pid == pid) found = m.path;  // a reused pid: the latest process
  if (found.empty())
    throw std::invalid_argument("process " + std::to_string(pid) + " is not in the process tree of " + root_path);
  return found;
}

Profile build_tree_profile(const std::string& path, std::optional<double> at_s, const capture::ReadProgress& progress) {
  Profile p = build_profile(path, at_s, progress);
  const std::vector<TreeMember> ms = tree_members(path);
  if (ms.empty()) return p;
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < p.samples.size(); ++i) index.emplace(site_key(p.samples[i].layer, p.samples[i].frames), i);
  size_t merged = 1;
  for (const auto& m : ms) {
    std::optional<double> at;
    if (at_s) {
      const double off = m.start_unix_ns >= p.start_unix_ns ? static_cast<double>(m.start_unix_ns - p.start_unix_ns) / 1e9 : 0;
      if (*at_s < off) continue;  // not yet forked at that moment
      at = *at_s - off;
    }
    Profile c;
    try {
      c = build_profile(m.path, at);
    } catch (const std::exception& e) {
      p.notes.push_back("process " + std::to_string(m.pid) + " left out: " + e.what());
      continue;
    }
    ++merged;
    for (auto& s : c.samples) {
      auto [it, fresh] = index.emplace(site_key(s.layer, s.frames), p.samples.size());
      if (fresh) {
        p.samples.push_back(std::move(s));
        continue;
      }
      ProfileSample& t = p.samples[it->second];
      t.inuse_bytes += s.inuse_bytes;
      t.inuse_count += s.inuse_count;
      t.alloc_bytes += s.alloc_bytes;
      t.alloc_count += s.alloc_count;
    }
    for (auto& mod : c.modules) {
      bool have = false;
      for (const auto& x : p.modules) have |= x.path == mod.path && x.load_bias == mod.load_bias;
      if (!have) p.modules.push_back(std::move(mod));
    }
  }
  std::stable_sort(p.samples.begin(), p.samples.end(),
                   [](const ProfileSample& a, const ProfileSample& b) { return a.inuse_bytes > b.inuse_bytes; });
  p.notes.push_back("merged over " + std::to_string(merged) +
                    " processes of a process tree (run --follow-fork): memory a child inherited counts in each "
                    "process holding it; --pid PID exports one process");
  return p;
}

void add_tree(const BuildOptions& opt, Report& r) {
  auto tree = std::make_shared<TreeOut>();
  std::vector<TreeMember> ms = tree_members(r.path, &tree->unreadable, &tree->not_read);
  if (ms.empty() && tree->unreadable.empty()) return;
  BuildOptions child_opt = opt;
  child_opt.tree = false;
  child_opt.history = false;
  std::vector<Report> reports;
  reports.reserve(ms.size());
  for (const auto& m : ms) {
    try {
      reports.push_back(build_report(m.path, child_opt));
    } catch (const std::exception& e) {
      tree->unreadable.push_back(base_of(m.path) + ": " + e.what());
    }
  }
  std::vector<const Report*> members;
  for (const auto& rep : reports) members.push_back(&rep);
  std::map<uint64_t, const Report*> by_pid{{r.pid, &r}};
  for (const Report* m : members) by_pid[m->pid] = m;  // a reused pid: the later process
  tree->processes.push_back(process_of(r, r, by_pid));
  for (const Report* m : members) tree->processes.push_back(process_of(*m, r, by_pid));
  tree->recycled = recycled_workers(tree->processes);
  // Merged leaks and stacks: the root's first, then each child's.
  std::vector<LeakOut> leaks;
  std::vector<StackOut> stacks;
  std::unordered_map<std::string, size_t> li, si;
  auto take = [&](const Report& p) {
    for (const auto& l : p.leaks) add_share(leaks, li, l, p.pid, l.rate_bytes_per_s);
    for (const auto& s : p.stacks) add_share(stacks, si, s, p.pid, 0.0);
  };
  take(r);
  bool any_leak = r.verdict == "leak";
  for (const Report* m : members) {
    take(*m);
    any_leak |= m->verdict == "leak";
    for (const auto& [layer, v] : m->live_by_layer) {
      r.live_by_layer[layer].bytes += v.bytes;
      r.live_by_layer[layer].count += v.count;
    }
  }
  std::stable_sort(leaks.begin(), leaks.end(),
                   [](const LeakOut& a, const LeakOut& b) { return a.rate_bytes_per_s > b.rate_bytes_per_s; });
  std::stable_sort(stacks.begin(), stacks.end(), [](const StackOut& a, const StackOut& b) { return a.bytes > b.bytes; });
  r.leaks = std::move(leaks);
  r.stacks = std::move(stacks);
  if (any_leak) r.verdict = "leak";
  r.tree = std::move(tree);
}

}  // namespace leakscope::report
