// Agent injection with ptrace: see inject.h and docs/attach.md.
//
// 1. PTRACE_SEIZE one thread (the main thread first) and PTRACE_INTERRUPT it.
// 2. Refuse to borrow a thread that is inside the allocator or the dynamic loader (it may hold
//    their locks, and dlopen needs both): its pc and every frame of its call chain (unwound by
//    libunwind-ptrace; every word of its live stack when that fails) are checked against
//    libc's allocator functions and ld.so's code. Such a thread is let go and tried
//    again a little later (or another thread is tried).
// 3. Call functions in it: registers saved, a scratch area 4 KiB below its stack pointer (well
//    past the red zone) holds the arguments' strings and a return address of 0, orig_rax = -1
//    so the kernel does not restart an interrupted system call into our call; the call ends
//    with a SIGSEGV at that return address (0x7350, below vm.mmap_min_addr), which is caught
//    and never delivered. A SIGSEGV anywhere else is the program's own and is delivered. Signals that arrive meanwhile
//    are delivered (their handlers run on the borrowed frame and return into it).
// 4. Put every register back and detach: an interrupted system call restarts as it would
//    after any signal.
#include "cli/inject.h"
#include "cli/ptrace.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <libunwind-ptrace.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

namespace leakscope::inject {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// An ELF object as mapped in the target: its load bias and a symbol lookup (.symtab when
// present, else .dynsym) through libelf.
struct Object {
  std::string path;  // as the target sees it
  uint64_t bias = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> syms;  // name -> (value, size)

  bool load(pid_t pid, const std::vector<Mapping>& maps, const std::string& want_path,
            const std::vector<std::string>& names) {
    path = want_path;
    // Read the file through the target's root, so a process in another mount namespace works.
    std::string file = "/proc/" + std::to_string(pid) + "/root" + path;
    int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    elf_version(EV_CURRENT);
    Elf* e = elf_begin(fd, ELF_C_READ, nullptr);
    bool ok = false;
    if (e && elf_kind(e) == ELF_K_ELF) {
      // Bias: the mapping of the first PT_LOAD segment's page.
      size_t nph = 0;
      elf_getphdrnum(e, &nph);
      for (size_t i = 0; i < nph; ++i) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
        uint64_t page_off = ph.p_offset & ~0xfffull, page_va = ph.p_vaddr & ~0xfffull;
        for (const Mapping& m : maps)
          if (m.path == path && m.offset == page_off) {
            bias = m.lo - page_va;
            ok = true;
            break;
          }
        break;
      }
      for (int pass = 0; pass < 2 && ok; ++pass) {
        Elf_Scn* scn = nullptr;
        while ((scn = elf_nextscn(e, scn)) != nullptr) {
          GElf_Shdr sh;
          if (!gelf_getshdr(scn, &sh) || sh.sh_type != (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM)) continue;
          Elf_Data* data = elf_getdata(scn, nullptr);
          if (!data || sh.sh_entsize == 0) continue;
          size_t n = sh.sh_size / sh.sh_entsize;
          for (size_t i = 0; i < n; ++i) {
            GElf_Sym s;
            if (!gelf_getsym(data, static_cast<int>(i), &s) || s.st_value == 0) continue;
            const char* nm = elf_strptr(e, sh.sh_link, s.st_name);
            if (!nm) continue;
            std::string name(nm);
            size_t at = name.find('@');
            if (at != std::string::npos) name.resize(at);
            for (const std::string& w : names)
              if (name == w && !syms.count(name)) syms[name] = {bias + s.st_value, s.st_size};
          }
        }
      }
    }
    if (e) elf_end(e);
    close(fd);
    return ok;
  }
  uint64_t addr(const std::string& name) const {
    auto it = syms.find(name);
    return it == syms.end() ? 0 : it->second.first;
  }
};

const Mapping* find_object(const std::vector<Mapping>& maps, bool (*match)(const std::string&)) {
  for (const Mapping& m : maps)
    if (match(m.path)) return &m;
  return nullptr;
}

bool is_libc(const std::string& p) {
  return ends_with(p, "/libc.so.6") || (p.find("/libc-2.") != std::string::npos && ends_with(p, ".so"));
}
bool is_ld(const std::string& p) { return p.find("/ld-linux") != std::string::npos || p.find("/ld-2.") != std::string::npos; }

const char* const kAllocFns[] = {"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
                                 "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_trim", "mallinfo",
                                 "mallinfo2", "malloc_stats", "malloc_info", "mallopt", "fork", "_Fork",
                                 "__libc_fork", "dlopen", "dlclose", "dl_iterate_phdr", "__libc_dlopen_mode"};

struct Ranges {
  std::vector<std::pair<uint64_t, uint64_t>> bad;  // code a borrowed thread must not be inside
  bool hit(uint64_t a) const {
    for (const auto& [lo, hi] : bad)
      if (a >= lo && a < hi) return true;
    return false;
  }
};

// The thread's real call chain, unwound through its .eh_frame by libunwind-ptrace: 1 when every
// frame was read and none is inside `bad`, 0 when one is, -1 when the unwind could not finish.
// Unlike a scan of the stack's words, stale return addresses left in unused slots (a lazy PLT
// binding through ld.so, an earlier malloc) do not count: a thread parked in sleep() on such a
// stack would otherwise never be borrowed.
int unwound_chain_clear(pid_t tid, const Ranges& bad) {
  unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
  if (!as) return -1;
  void* upt = _UPT_create(tid);
  int verdict = -1;
  unw_cursor_t c;
  if (upt && unw_init_remote(&c, as, upt) == 0) {
    for (int depth = 0; depth < 512; ++depth) {
      unw_word_t ip = 0;
      if (unw_get_reg(&c, UNW_REG_IP, &ip) != 0) break;
      // A caller's ip is a return address: it may point just past a call that ends its function.
      if (bad.hit(depth == 0 ? ip : ip - 1)) {
        verdict = 0;
        break;
      }
      int step = unw_step(&c);
      if (step == 0) verdict = 1;
      if (step <= 0) break;
    }
  }
  if (upt) _UPT_destroy(upt);
  unw_destroy_addr_space(as);
  return verdict;
}

// True when the stopped thread may be borrowed: neither its pc nor any frame of its call chain
// is inside the allocator or the loader. When the chain cannot be unwound, every word of the
// live stack is checked instead (conservative: a stale word refuses the thread).
bool safe_point(Tracee& t, const Ranges& bad, const std::vector<Mapping>& maps) {
  user_regs_struct r{};
  if (!t.get_regs(&r)) return false;
  if (bad.hit(r.rip)) return false;
  // Room below the stack pointer for the call (8 KiB scratch + dlopen and the agent's set-up):
  // a thread on a small stack, a fiber stack or a signal stack is not borrowed. The main
  // thread's [stack] grows on demand.
  const Mapping* sm = nullptr;
  for (const Mapping& m : maps)
    if (r.rsp > m.lo && r.rsp <= m.hi) sm = &m;
  if (!sm || (sm->path != "[stack]" && r.rsp - sm->lo < (128u << 10))) return false;
  if (int clear = unwound_chain_clear(t.tid(), bad); clear >= 0) return clear == 1;
  uint64_t hi = r.rsp + (256u << 10);
  for (const Mapping& m : maps)
    if (r.rsp >= m.lo && r.rsp < m.hi) hi = std::min<uint64_t>(hi, m.hi);
  std::vector<uint64_t> words((hi - r.rsp) / 8);
  if (words.empty() || !t.read(r.rsp, words.data(), words.size() * 8)) return false;
  for (uint64_t w : words)
    if (bad.hit(w)) return false;
  return true;
}

}  // namespace

std::string explain_ptrace_error(pid_t pid, int err) {
  std::string p = "process " + std::to_string(pid);
  if (err == ESRCH) return "no process " + std::to_string(pid);
  if (err != EPERM && err != EACCES) return "cannot ptrace " + p + ": " + strerror(err);
  std::string tracer = status_field(pid, "TracerPid");
  if (!tracer.empty() && tracer != "0")
    return p + " is already being traced by process " + tracer +
           " (a debugger, strace, or another attach); stop that tracer first";
  std::string uid = status_field(pid, "Uid");
  unsigned long ruid = 0, euid = 0;
  if (sscanf(uid.c_str(), "%lu %lu", &ruid, &euid) == 2 && geteuid() != 0 && euid != geteuid())
    return p + " belongs to another user (uid " + std::to_string(euid) + "); attach as that user or as root";
  std::string scope = read_first_line("/proc/sys/kernel/yama/ptrace_scope");
  if (scope == "1" && geteuid() != 0)
    return "ptrace of " + p + " not permitted: Yama ptrace_scope is 1 (only a parent may trace its children); run "
           "as root, or allow it with `sudo sysctl kernel.yama.ptrace_scope=0`, or start the program under "
           "`leakscope run`";
  if (scope == "2" || scope == "3")
    return "ptrace of " + p + " not permitted: Yama ptrace_scope is " + scope +
           (scope == "2" ? " (admin only); run as root with CAP_SYS_PTRACE"
                         : " (ptrace disabled until reboot); start the program under `leakscope run` instead");
  return "ptrace of " + p + " not permitted (" + strerror(err) +
         "): in a container, run with the SYS_PTRACE capability (docker run --cap-add=SYS_PTRACE); a set-id "
         "or non-dumpable program can only be traced by root";
}

std::string preflight(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return "no process " + std::to_string(pid);
  std::string state = status_field(pid, "State");
  if (state.rfind("Z", 0) == 0)
    return "process " + std::to_string(pid) + " has exited (a zombie its parent has not reaped yet)";
  if (state.rfind("T", 0) == 0)
    return "process " + std::to_string(pid) + " is stopped (SIGSTOP or Ctrl-Z); let it run first: kill -CONT " +
           std::to_string(pid);
  std::string maps = "/proc/" + std::to_string(pid) + "/maps";
  int fd = open(maps.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? "no process " + std::to_string(pid) : explain_ptrace_error(pid, errno);
  char c;
  ssize_t n = read(fd, &c, 1);
  int err = errno;
  close(fd);
  if (n < 0) return explain_ptrace_error(pid, err);
  std::string tracer = status_field(pid, "TracerPid");
  if (!tracer.empty() && tracer != "0") return explain_ptrace_error(pid, EPERM);
  return "";
}

Result attach(pid_t pid, const std::string& agent_path, const std::string& config) {
  Result res;
  double t0 = now_s();
  auto fail = [&](const std::string& why) {
    res.error = why;
    res.seconds = now_s() - t0;
    return res;
  };
  // The caller ran preflight(); the process may still have gone since.
  std::vector<Mapping> maps = read_maps(pid);
  if (maps.empty()) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return fail("no process " + std::to_string(pid));
    return fail(explain_ptrace_error(pid, EACCES));
  }
  const Mapping* libc_m = find_object(maps, is_libc);
  if (!libc_m) return fail("process " + std::to_string(pid) + " does not use the GNU C library (no libc.so.6 mapped)");
  Object libc, ld, agent;
  std::vector<std::string> names(std::begin(kAllocFns), std::end(kAllocFns));
  if (!libc.load(pid, maps, libc_m->path, names)) return fail("cannot read " + libc_m->path + " of process " + std::to_string(pid));
  uint64_t dlopen_fn = libc.addr("dlopen") ? libc.addr("dlopen") : libc.addr("__libc_dlopen_mode");
  if (!dlopen_fn) return fail("no dlopen in " + libc_m->path);
  Ranges bad;
  for (const auto& [name, vs] : libc.syms)
    if (vs.second) bad.bad.emplace_back(vs.first, vs.first + vs.second);
  for (const Mapping& m : maps)
    if ((is_ld(m.path) || m.path.find("jemalloc") != std::string::npos || m.path.find("tcmalloc") != std::string::npos ||
         m.path.find("mimalloc") != std::string::npos) &&
        m.perms.find('x') != std::string::npos)
      bad.bad.emplace_back(m.lo, m.hi);  // the loader, and malloc replacements (their locks too)

  std::vector<pid_t> tids = threads_of(pid);
  std::string last_why;
  for (int round = 0; round < 40; ++round) {
    for (pid_t tid : tids) {
      Tracee t(tid);
      if (int err = t.seize(); err != 0) {
        if (err == ESRCH && tid != pid) continue;  // that thread ended
        return fail(explain_ptrace_error(pid, err));
      }
      if (std::string why = t.interrupt(); !why.empty()) {
        if (t.gone() && tid != pid && kill(pid, 0) == 0) continue;
        return fail(why);
      }
      // The thread may be inside malloc or dlopen: let it run on and come back.
      if (!safe_point(t, bad, maps)) {
        last_why = "every thread was inside the allocator or the dynamic loader, or had too little stack";
        continue;  // Tracee's destructor detaches
      }
      // Load the agent unless an earlier attach left it mapped (it is never unloaded).
      maps = read_maps(pid);
      bool mapped = false;
      for (const Mapping& m : maps) mapped |= m.path == agent_path;
      if (!mapped) {
        uint64_t handle = 0;
        std::string why = t.call(dlopen_fn, {Tracee::kStr0, RTLD_NOW}, {agent_path}, &handle);
        if (!why.empty()) return fail(why);
        if (!handle) return fail("the process could not load " + agent_path + " (dlopen failed in it)");
        maps = read_maps(pid);
      }
      if (!agent.load(pid, maps, agent_path, {"leakscope_attach_entry"}) || !agent.addr("leakscope_attach_entry"))
        return fail("cannot find leakscope_attach_entry in " + agent_path + " as mapped in the process");
      uint64_t rc = 0;
      const size_t kReply = 512;
      std::string zeros(kReply - 1, ' ');  // the agent's reply buffer, in the scratch area
      std::vector<uint64_t> at;
      std::string why = t.call(agent.addr("leakscope_attach_entry"), {Tracee::kStr0, Tracee::kStr0 + 1, kReply},
                               {config, zeros}, &rc, &at);
      if (!why.empty()) return fail(why);
      char reply[kReply + 1] = {};
      if (at.size() == 2) t.read(at[1], reply, kReply);
      reply[kReply] = 0;
      res.agent_reply = reply;
      res.ok = static_cast<int>(rc) == 0;
      if (!res.ok) res.error = res.agent_reply.empty() ? "the agent refused to attach" : res.agent_reply;
      res.seconds = now_s() - t0;
      return res;
    }
    sleep_ms(25);
    tids = threads_of(pid);
    if (tids.empty() || (kill(pid, 0) != 0 && errno == ESRCH)) return fail("the process exited during attach");
  }
  return fail("cannot attach to process " + std::to_string(pid) + ": " + last_why + " for 1 s; try again");
}

}  // namespace leakscope::inject
