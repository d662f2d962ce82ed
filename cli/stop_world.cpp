// Copying a stopped process: see stop_world.h.
#include "cli/stop_world.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "cli/ptrace.h"

namespace leakscope::inject {
namespace {

// One seized thread. Stopped means in a ptrace event-stop we caused.
struct Stopped {
  pid_t tid, pid;
  bool stopped = false, gone = false;
};

// Waits for `t` to report the stop PTRACE_INTERRUPT asked for; signals that arrive first are
// delivered. False when the thread is gone (or does not stop in 2 s: then it stays running).
int g_reaped = -1;  // a wait of ours reaped the whole process (its main thread's exit)
pid_t g_copy_pid = 0;  // the process being copied

bool wait_stop(Stopped& t) {
  double deadline = now_s() + 2;
  for (;;) {
    int st = 0;
    pid_t w = 0;
    while ((w = waitpid(t.tid, &st, __WALL | WNOHANG)) == 0 && now_s() < deadline) usleep(50);
    if (w <= 0) return false;
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      t.gone = true;
      if (t.tid == t.pid) g_reaped = st;  // the process itself (our child under `run`)
      return false;
    }
    if (!WIFSTOPPED(st)) continue;
    if ((st >> 16) == PTRACE_EVENT_STOP) {
      t.stopped = true;
      return true;
    }
    ptrace(PTRACE_CONT, t.tid, nullptr, reinterpret_cast<void*>(static_cast<long>(WSTOPSIG(st))));
  }
}

void stop_all(std::vector<Stopped>& ts) {
  for (Stopped& t : ts)
    if (!t.stopped && !t.gone) ptrace(PTRACE_INTERRUPT, t.tid, nullptr, nullptr);
  for (Stopped& t : ts)
    if (!t.stopped && !t.gone) wait_stop(t);
}

void run_on(Stopped& t) {
  if (t.stopped && ptrace(PTRACE_CONT, t.tid, nullptr, nullptr) == 0) t.stopped = false;
}

// Everything the process is made of: every thread seized and stopped, including threads
// started while we were at it (the list is read again until it holds no new thread).
std::string seize_all(pid_t pid, std::vector<Stopped>& ts) {
  std::set<pid_t> known;
  for (int round = 0; round < 50; ++round) {
    bool added = false;
    for (pid_t tid : threads_of(pid)) {
      if (known.count(tid)) continue;
      known.insert(tid);
      if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
        if (errno == ESRCH) continue;  // that thread ended
        return "cannot stop thread " + std::to_string(tid) + ": " + strerror(errno);
      }
      ts.push_back(Stopped{tid, pid});
      added = true;
    }
    stop_all(ts);
    if (!added) return "";
  }
  return "the process keeps starting threads; try again";
}

// A thread inside a leakscope hook may have half recorded a block (a realloc's free written,
// its new block not yet): its t_in_hook flag is read at its thread pointer plus the offset the
// agent published. Such threads are let run a little until they are out.
bool in_hook(pid_t tid, int64_t off) {
  user_regs_struct r{};
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &r) != 0) return false;
  uint8_t flag = 0;
  iovec local{&flag, 1}, remote{reinterpret_cast<void*>(r.fs_base + static_cast<uint64_t>(off)), 1};
  if (process_vm_readv(tid, &local, 1, &remote, 1, 0) != 1) return false;
  return flag != 0;
}

int settle(std::vector<Stopped>& ts, const capture::ScanDescriptor& d, std::vector<std::string>* warnings) {
  int rounds = 0;
  for (int outer = 0; outer < 8; ++outer) {
    for (int inner = 0; inner < 40; ++inner) {
      std::vector<Stopped*> busy;
      for (Stopped& t : ts) {
        if (t.gone || !t.stopped || static_cast<uint64_t>(t.tid) == d.writer_tid ||
            static_cast<uint64_t>(t.tid) == d.requester_tid)
          continue;
        if (in_hook(t.tid, d.in_hook_tls_offset)) busy.push_back(&t);
      }
      if (busy.empty()) return rounds;
      ++rounds;
      for (Stopped* t : busy) run_on(*t);
      usleep(200);
      for (Stopped* t : busy)
        if (!t->gone) ptrace(PTRACE_INTERRUPT, t->tid, nullptr, nullptr);
      for (Stopped* t : busy)
        if (!t->gone) wait_stop(*t);
    }
    // A busy thread may wait for a lock a stopped one holds: let everyone run a moment.
    for (Stopped& t : ts) run_on(t);
    sleep_ms(2);
    stop_all(ts);
  }
  warnings->push_back("a thread stayed inside a leakscope hook; a block it was recording may be judged without it");
  return rounds;
}

// Pages of [lo, hi) that are present or swapped (/proc/PID/pagemap), as [lo, hi) runs; the
// whole range when pagemap cannot be read.
std::vector<std::pair<uint64_t, uint64_t>> present_runs(int pagemap, uint64_t lo, uint64_t hi) {
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  if (pagemap < 0) return {{lo, hi}};
  const uint64_t page = 4096;
  std::vector<uint64_t> ent(4096);
  for (uint64_t a = lo; a < hi;) {
    uint64_t n = std::min<uint64_t>((hi - a) / page, ent.size());
    ssize_t r = pread(pagemap, ent.data(), n * 8, static_cast<off_t>(a / page * 8));
    if (r != static_cast<ssize_t>(n * 8)) return {{lo, hi}};
    for (uint64_t i = 0; i < n; ++i) {
      bool in = (ent[i] >> 63) & 1 || (ent[i] >> 62) & 1;
      uint64_t pa = a + i * page;
      if (!in) continue;
      if (!runs.empty() && runs.back().second == pa) runs.back().second = pa + page;
      else runs.emplace_back(pa, pa + page);
    }
    a += n * page;
  }
  return runs;
}

// Copies [lo, hi) of the process into a new image region; returns the bytes copied.
// process_vm_readv, or /proc/PID/mem where it fails; both are fast into memory already
// faulted in (HeapImage::reserve).
uint64_t copy_range(int mem, uint64_t lo, uint64_t hi, analysis::HeapImage* image) {
  uint8_t* dst = image->add_region(lo, hi - lo);
  uint64_t done = 0;
  const pid_t pid = g_copy_pid;
  while (lo + done < hi) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(hi - lo - done, 64u << 20));
    iovec local{dst + done, n}, remote{reinterpret_cast<void*>(lo + done), n};
    ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (r <= 0) r = pread(mem, dst + done, n, static_cast<off_t>(lo + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += static_cast<uint64_t>(r);
  }
  image->shrink_last_region(done & ~static_cast<uint64_t>(7));
  return done;
}

int open_mem(pid_t pid) { return open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC); }

bool skip_mapping(const Mapping& m) {
  return m.perms.empty() || m.perms[0] != 'r' || m.path == "[vvar]" || m.path == "[vvar_vclock]" ||
         m.path == "[vsyscall]" || m.path == "[vdso]";
}

uint64_t copy_writable(pid_t pid, const std::vector<Mapping>& maps, analysis::HeapImage* image) {
  int pagemap = open(("/proc/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  int mem = open_mem(pid);
  uint64_t bytes = 0;
  for (const Mapping& m : maps) {
    if (mem < 0 || skip_mapping(m) || m.perms.size() < 2 || m.perms[1] != 'w') continue;
    for (const auto& [lo, hi] : present_runs(pagemap, m.lo, m.hi)) bytes += copy_range(mem, lo, hi, image);
  }
  if (pagemap >= 0) close(pagemap);
  if (mem >= 0) close(mem);
  return bytes;
}

bool is_elf_file(const std::string& path) {
  return !path.empty() && path[0] == '/' && path.find(" (deleted)") == std::string::npos;
}

// Writable ranges (PT_LOAD with PF_W, PT_GNU_RELRO) of one ELF module, read from its file
// through the process's root; its rw mappings when the file cannot be read.
analysis::ImageModule module_ranges(pid_t pid, const std::string& path, const std::vector<Mapping>& maps) {
  analysis::ImageModule mod;
  mod.path = path;
  int fd = open(("/proc/" + std::to_string(pid) + "/root" + path).c_str(), O_RDONLY | O_CLOEXEC);
  Elf* e = fd >= 0 ? elf_begin(fd, ELF_C_READ, nullptr) : nullptr;
  size_t nph = 0;
  bool ok = e && elf_kind(e) == ELF_K_ELF && elf_getphdrnum(e, &nph) == 0;
  uint64_t bias = 0;
  bool have_bias = false;
  for (size_t i = 0; ok && i < nph && !have_bias; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(e, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
    for (const Mapping& m : maps)
      if (m.path == path && m.offset == (ph.p_offset & ~0xfffull)) {
        bias = m.lo - (ph.p_vaddr & ~0xfffull);
        have_bias = true;
        break;
      }
    break;
  }
  for (size_t i = 0; have_bias && i < nph; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(e, static_cast<int>(i), &ph)) continue;
    if ((ph.p_type == PT_LOAD && (ph.p_flags & PF_W)) || ph.p_type == PT_GNU_RELRO)
      mod.data.push_back(capture::ScanRange{bias + ph.p_vaddr, bias + ph.p_vaddr + ph.p_memsz});
  }
  if (e) elf_end(e);
  if (fd >= 0) close(fd);
  if (!have_bias)
    for (const Mapping& m : maps)
      if (m.path == path && m.perms.size() > 1 && m.perms[1] == 'w') mod.data.push_back(capture::ScanRange{m.lo, m.hi});
  return mod;
}

// A read-only file mapping, read from the file itself: the same bytes, without mapping the
// pages into the process (reading them through it would add them to its RSS).
bool copy_from_file(pid_t pid, const Mapping& m, analysis::HeapImage* image) {
  int fd = open(("/proc/" + std::to_string(pid) + "/root" + m.path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  uint64_t n = m.hi - m.lo;
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < m.offset) {
    close(fd);
    return false;
  }
  n = std::min<uint64_t>(n, static_cast<uint64_t>(st.st_size) - m.offset) & ~static_cast<uint64_t>(7);
  uint8_t* dst = image->add_region(m.lo, n);
  uint64_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, dst + done, n - done, static_cast<off_t>(m.offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += static_cast<uint64_t>(r);
  }
  close(fd);
  image->shrink_last_region(done & ~static_cast<uint64_t>(7));
  return true;
}

// After the process runs on: its ELF modules' read-only data (never written, so copying it
// now is the same as before), and their writable ranges.
void copy_modules(pid_t pid, const std::vector<Mapping>& maps, analysis::HeapImage* image) {
  elf_version(EV_CURRENT);
  std::set<std::string> paths;
  for (const Mapping& m : maps)
    if (is_elf_file(m.path) && m.offset == 0) paths.insert(m.path);
  int mem = open_mem(pid);
  for (const std::string& p : paths) {
    analysis::ImageModule mod = module_ranges(pid, p, maps);
    if (mod.data.empty()) continue;  // not an ELF object (a data file mapped at offset 0)
    image->modules.push_back(std::move(mod));
    for (const Mapping& m : maps)
      if (m.path == p && m.perms == "r--p" && !copy_from_file(pid, m, image) && mem >= 0)
        copy_range(mem, m.lo, m.hi, image);
  }
  if (mem >= 0) close(mem);
}

}  // namespace

std::string copy_process(pid_t pid, uint64_t descriptor, analysis::HeapImage* image, CopyStats* stats) {
  capture::ScanDescriptor d{};
  {
    iovec local{&d, sizeof d}, remote{reinterpret_cast<void*>(descriptor), sizeof d};
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(sizeof d) ||
        memcmp(d.magic, capture::kScanMagic, sizeof d.magic) != 0)
      return "cannot read the agent's scan descriptor in process " + std::to_string(pid);
  }
  image->pid = static_cast<uint64_t>(pid);
  image->descriptor = descriptor;
  g_reaped = -1;
  g_copy_pid = pid;
  {  // Room for the copy, faulted in while the process still runs (a quarter more for growth).
    uint64_t want = 0;
    int pagemap = open(("/proc/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
    for (const Mapping& m : read_maps(pid))
      if (!skip_mapping(m) && m.perms.size() > 1 && m.perms[1] == 'w')
        for (const auto& [lo, hi] : present_runs(pagemap, m.lo, m.hi)) want += hi - lo;
    if (pagemap >= 0) close(pagemap);
    image->reserve(static_cast<size_t>(want + want / 4 + (16u << 20)));
  }
  std::vector<Stopped> ts;
  double t0 = now_s();
  std::string why = seize_all(pid, ts);
  auto release = [&]() {
    for (Stopped& t : ts) {
      if (t.gone) continue;
      if (!t.stopped) {
        ptrace(PTRACE_INTERRUPT, t.tid, nullptr, nullptr);
        wait_stop(t);
      }
      ptrace(PTRACE_DETACH, t.tid, nullptr, nullptr);
    }
    stats->stopped_s = now_s() - t0;
    stats->reaped_status = g_reaped;
  };
  if (!why.empty()) {
    release();
    return why;
  }
  stats->safe_rounds = settle(ts, d, &image->warnings);
  for (const Stopped& t : ts) {
    if (t.gone || !t.stopped) continue;
    user_regs_struct r{};
    if (ptrace(PTRACE_GETREGS, t.tid, nullptr, &r) != 0) continue;
    analysis::ImageThread it;
    it.tid = static_cast<uint64_t>(t.tid);
    static_assert(sizeof r == sizeof it.regs, "user_regs_struct has kRegCount words");
    memcpy(it.regs, &r, sizeof r);
    image->threads.push_back(it);
  }
  if (image->threads.empty()) {
    release();
    return "the process exited during findleaks";
  }
  std::vector<Mapping> maps = read_maps(pid);
  double c0 = now_s();
  stats->copied_bytes = copy_writable(pid, maps, image);
  stats->copy_s = now_s() - c0;
  release();
  for (const Mapping& m : maps)
    image->maps.push_back(analysis::ImageMapping{m.lo, m.hi, m.offset, m.perms, m.path});
  copy_modules(pid, maps, image);
  image->finish();
  timespec ts_now;
  clock_gettime(CLOCK_REALTIME, &ts_now);
  image->taken_unix_ns = static_cast<uint64_t>(ts_now.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts_now.tv_nsec);
  return "";
}

}  // namespace leakscope::inject
