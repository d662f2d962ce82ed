// ptrace and /proc helpers shared by `attach` (inject.cpp) and `findleaks`/`heapdump`
// (stop_world.cpp): one traced thread (Tracee), the memory map, the thread list.
// x86-64 Linux only.
#pragma once
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <elf.h>
#include <signal.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace leakscope::inject {

double now_s();  // CLOCK_MONOTONIC
void sleep_ms(int ms);

// One line of /proc/PID/maps.
struct Mapping {
  uint64_t lo, hi, offset;
  std::string perms, path;
};
std::vector<Mapping> read_maps(pid_t pid);
// The thread ids of `pid`, `pid` first.
std::vector<pid_t> threads_of(pid_t pid);
std::string read_first_line(const std::string& path);
// The value of "KEY:" in /proc/PID/status, or "".
std::string status_field(pid_t pid, const std::string& key);

// One traced thread (PTRACE_SEIZE): stop, registers, memory, and calls into it (attach).
class Tracee {
 public:
  explicit Tracee(pid_t tid) : tid_(tid) {}
  ~Tracee() { detach(); }

  // 0 or errno of PTRACE_SEIZE.
  int seize() {
    if (ptrace(PTRACE_SEIZE, tid_, nullptr, nullptr) != 0) return errno;
    seized_ = true;
    return 0;
  }
  // Stops the thread. Returns "" or why not.
  std::string interrupt() {
    if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) != 0) return std::string("PTRACE_INTERRUPT: ") + strerror(errno);
    double deadline = now_s() + 2;
    for (;;) {
      int st = 0;
      pid_t w = 0;
      while ((w = waitpid(tid_, &st, __WALL | WNOHANG)) == 0 && now_s() < deadline) sleep_ms(1);
      if (w == 0) return "the thread did not stop within 2 s (uninterruptible sleep, or waiting on a vfork child)";
      if (w < 0) return std::string("waitpid: ") + strerror(errno);
      if (WIFEXITED(st) || WIFSIGNALED(st)) {
        gone_ = true;
        return "the process exited during attach";
      }
      if (!WIFSTOPPED(st)) continue;
      if ((st >> 16) == PTRACE_EVENT_STOP) {
        stopped_ = true;
        return "";
      }
      // A signal was on its way: deliver it and wait for our stop.
      ptrace(PTRACE_CONT, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(WSTOPSIG(st))));
    }
  }
  void detach() {
    if (!seized_ || gone_) return;
    if (!stopped_) interrupt();  // PTRACE_DETACH needs a stopped tracee
    ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
    seized_ = stopped_ = false;
  }
  bool get_regs(user_regs_struct* r) { return ptrace(PTRACE_GETREGS, tid_, nullptr, r) == 0; }
  bool set_regs(const user_regs_struct* r) { return ptrace(PTRACE_SETREGS, tid_, nullptr, r) == 0; }

  bool read(uint64_t addr, void* buf, size_t n) {
    iovec local{buf, n}, remote{reinterpret_cast<void*>(addr), n};
    return process_vm_readv(tid_, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(n);
  }
  bool write(uint64_t addr, const void* buf, size_t n) {
    iovec local{const_cast<void*>(buf), n}, remote{reinterpret_cast<void*>(addr), n};
    if (process_vm_writev(tid_, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(n)) return true;
    // Fallback: word by word through ptrace (works where the pages are not writable to us).
    const uint8_t* p = static_cast<const uint8_t*>(buf);
    for (size_t i = 0; i < n; i += sizeof(long)) {
      long word = 0;
      size_t k = n - i < sizeof(long) ? n - i : sizeof(long);
      if (k < sizeof(long)) {
        errno = 0;
        word = ptrace(PTRACE_PEEKDATA, tid_, reinterpret_cast<void*>(addr + i), nullptr);
        if (errno) return false;
      }
      memcpy(&word, p + i, k);
      if (ptrace(PTRACE_POKEDATA, tid_, reinterpret_cast<void*>(addr + i), reinterpret_cast<void*>(word)) != 0)
        return false;
    }
    return true;
  }

  // Calls fn(args...) in the stopped thread; `strings` are copied to the scratch area first and
  // an argument equal to kStr0 + i is replaced by the address of strings[i]. Returns "" and
  // the return value, or why the call failed (the registers are restored either way).
  static constexpr uint64_t kStr0 = 0x5eed000000000000ull;
  static constexpr uint64_t kReturnSentinel = 0x7350;
  std::string call(uint64_t fn, std::vector<uint64_t> args, const std::vector<std::string>& strings,
                   uint64_t* ret, std::vector<uint64_t>* addrs_out = nullptr, double timeout_s = 15) {
    user_regs_struct saved{}, r{};
    if (!get_regs(&saved)) return std::string("PTRACE_GETREGS: ") + strerror(errno);
    // The called code uses vector and x87 registers too: save the whole XSAVE area (or at
    // least the FXSAVE one) and put it back with the general registers.
    alignas(64) static uint8_t xsave[16384];
    iovec xs{xsave, sizeof xsave};
    bool have_xstate = ptrace(PTRACE_GETREGSET, tid_, reinterpret_cast<void*>(NT_X86_XSTATE), &xs) == 0;
    user_fpregs_struct fp{};
    bool have_fp = !have_xstate && ptrace(PTRACE_GETFPREGS, tid_, nullptr, &fp) == 0;
    auto restore = [&]() {
      bool ok = set_regs(&saved);
      if (have_xstate) ok = ptrace(PTRACE_SETREGSET, tid_, reinterpret_cast<void*>(NT_X86_XSTATE), &xs) == 0 && ok;
      if (have_fp) ok = ptrace(PTRACE_SETFPREGS, tid_, nullptr, &fp) == 0 && ok;
      return ok;
    };
    r = saved;
    uint64_t base = (saved.rsp - 8192) & ~0xfull;  // 8 KiB below: past the red zone and any scratch
    uint64_t at = base + 64;
    std::vector<uint64_t> str_addr;
    for (const std::string& s : strings) {
      uint64_t next = (at + s.size() + 1 + 15) & ~0xfull;
      if (next > saved.rsp - 256) return "arguments too long";  // checked before anything is written
      if (!write(at, s.c_str(), s.size() + 1)) return "cannot write into the thread's stack";
      str_addr.push_back(at);
      at = next;
    }
    if (addrs_out) *addrs_out = str_addr;
    for (auto& a : args)
      if (a >= kStr0 && a < kStr0 + str_addr.size()) a = str_addr[a - kStr0];
    // The return address: below 64 KiB, where nothing can be mapped (vm.mmap_min_addr), and
    // not 0, so a call through a null pointer inside the function is not taken for a return.
    uint64_t sentinel = kReturnSentinel;
    uint64_t sp = base - 8;  // after the "call": rsp = 8 mod 16, as at any function entry
    if (!write(sp, &sentinel, sizeof sentinel)) return "cannot write into the thread's stack";
    r.rsp = sp;
    r.rip = fn;
    r.rax = 0;
    r.orig_rax = static_cast<unsigned long long>(-1);  // no system call restart into our call
    unsigned long long* regs[] = {&r.rdi, &r.rsi, &r.rdx, &r.rcx, &r.r8, &r.r9};
    for (size_t i = 0; i < args.size() && i < 6; ++i) *regs[i] = args[i];
    if (!set_regs(&r)) return std::string("PTRACE_SETREGS: ") + strerror(errno);
    std::string why;
    stopped_ = false;
    int sig = 0;
    double deadline = now_s() + timeout_s;
    for (;;) {
      if (ptrace(PTRACE_CONT, tid_, nullptr, reinterpret_cast<void*>(static_cast<long>(sig))) != 0) {
        why = std::string("PTRACE_CONT: ") + strerror(errno);
        break;
      }
      sig = 0;
      int st = 0;
      pid_t w = 0;
      while ((w = waitpid(tid_, &st, __WALL | WNOHANG)) == 0 && now_s() < deadline) sleep_ms(1);
      if (w == 0) {
        why = "the call into the process did not return within " + std::to_string(static_cast<int>(timeout_s)) + " s";
        interrupt();
        break;
      }
      if (w < 0) {
        why = std::string("waitpid: ") + strerror(errno);
        break;
      }
      if (WIFEXITED(st) || WIFSIGNALED(st)) {
        gone_ = true;
        return "the process exited during attach";
      }
      if (!WIFSTOPPED(st)) continue;
      if ((st >> 16) == PTRACE_EVENT_STOP) continue;  // a group stop or a late interrupt: go on
      int s = WSTOPSIG(st);
      user_regs_struct now{};
      if (s == SIGSEGV && get_regs(&now) && now.rip == kReturnSentinel && now.rsp == sp + 8) {
        *ret = now.rax;
        stopped_ = true;
        break;
      }
      sig = s;  // the program's own signal: deliver it
    }
    stopped_ = true;
    if (!restore()) return why.empty() ? std::string("cannot restore registers: ") + strerror(errno) : why;
    return why;
  }

  pid_t tid() const { return tid_; }
  bool gone() const { return gone_; }

 private:
  pid_t tid_;
  bool seized_ = false, stopped_ = false, gone_ = false;
};

}  // namespace leakscope::inject
