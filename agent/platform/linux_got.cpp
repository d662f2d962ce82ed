// GOT/PLT patching for x86-64 Linux: for every loaded ELF object (except the agent itself,
// the dynamic loader and the vDSO) rewrite the JUMP_SLOT and GLOB_DAT slots of the hooked
// symbols to point at the hooks. Works the same in a preloaded and an attached agent. Slots in
// the RELRO range are made writable for the write and read-only again afterwards. Original
// values are kept so a later detach can restore them.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "agent/agent.h"
#include "agent/own_memory.h"

namespace leakscope::agent {

namespace {
constexpr int kMaxModules = 4096;
struct Seen {
  uintptr_t base;
  uintptr_t dyn;
};
Seen g_patched[kMaxModules];
int g_npatched = 0;
Seen g_described[kMaxModules];
int g_ndescribed = 0;
pthread_mutex_t g_patch_mutex = PTHREAD_MUTEX_INITIALIZER;

bool seen(const Seen* list, int n, uintptr_t base, uintptr_t dyn) {
  for (int i = 0; i < n; ++i)
    if (list[i].base == base && list[i].dyn == dyn) return true;
  return false;
}

bool skip_module(const dl_phdr_info* info) {
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  if (g_self.bias != 0 && info->dlpi_addr == g_self.bias) return true;
  if (strstr(name, "linux-vdso") || strstr(name, "ld-linux") || strstr(name, "/ld-")) return true;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) return false;
  return true;
}

// Every slot we changed, with its module and original value, so detach can put it back.
struct Patched {
  uintptr_t slot;
  void* original;
  void* hook;
  uintptr_t base, dyn;  // the module (dlclosed modules are skipped on restore)
  uintptr_t relro_lo, relro_hi;
};
constexpr size_t kMaxPatched = 1u << 16;
Patched* g_slots = nullptr;  // mmap'd on first use
size_t g_nslots = 0;
uintptr_t g_cur_base = 0, g_cur_dyn = 0;  // module being patched (under g_patch_mutex)

bool write_slot(uintptr_t slot, void* value, uintptr_t relro_lo, uintptr_t relro_hi) {
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t pg = slot & ~static_cast<uintptr_t>(page - 1);
  bool relro = slot >= relro_lo && slot < relro_hi;
  if (relro && mprotect(reinterpret_cast<void*>(pg), static_cast<size_t>(page), PROT_READ | PROT_WRITE) != 0) return false;
  __atomic_store_n(reinterpret_cast<void**>(slot), value, __ATOMIC_RELEASE);
  if (relro) mprotect(reinterpret_cast<void*>(pg), static_cast<size_t>(page), PROT_READ);
  return true;
}

void patch_slot(uintptr_t slot, void* value, uintptr_t relro_lo, uintptr_t relro_hi) {
  void** p = reinterpret_cast<void**>(slot);
  void* original = *p;
  if (original == value) return;
  if (!g_slots) {
    void* m = own_map(kMaxPatched * sizeof(Patched));
    if (m == nullptr) return;
    g_slots = static_cast<Patched*>(m);
  }
  if (g_nslots >= kMaxPatched) return;  // could not be restored: leave it alone
  if (!write_slot(slot, value, relro_lo, relro_hi)) return;
  g_slots[g_nslots++] = Patched{slot, original, value, g_cur_base, g_cur_dyn, relro_lo, relro_hi};
}

bool g_foreign_allocator = false;  // some slot was left alone (patch_all_modules says so once)

bool in_module(const dl_phdr_info* info, const void* p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && a >= lo && a < lo + ph.p_memsz) return true;
  }
  return false;
}

// PT_LOAD ranges of the main program (a non-PIE program's PLT stubs are the canonical
// addresses other modules' slots hold) and of the C library, taken once.
struct ObjectRanges {
  uintptr_t lo[16], hi[16];
  int n = 0;
  void take(const dl_phdr_info* info) {
    n = 0;
    for (int i = 0; i < info->dlpi_phnum && n < 16; ++i) {
      const ElfW(Phdr)& ph = info->dlpi_phdr[i];
      if (ph.p_type != PT_LOAD) continue;
      lo[n] = info->dlpi_addr + ph.p_vaddr;
      hi[n++] = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
    }
  }
  bool has(const void* p) const {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (int i = 0; i < n; ++i)
      if (a >= lo[i] && a < hi[i]) return true;
    return false;
  }
};
ObjectRanges g_main_obj, g_libc_obj;
}  // namespace
uintptr_t g_loader_text_lo = 0, g_loader_text_hi = 0;
namespace {
bool in_main(const void* p) { return g_main_obj.has(p); }
bool in_libc(const void* p) { return g_libc_obj.has(p); }

int objects_cb(dl_phdr_info* info, size_t, void* first) {
  if (*static_cast<bool*>(first)) g_main_obj.take(info);  // the main program is listed first
  *static_cast<bool*>(first) = false;
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  const char* slash = strrchr(name, '/');
  const char* base = slash ? slash + 1 : name;
  if (strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-2.", 7) == 0) g_libc_obj.take(info);
  if (strncmp(base, "ld-linux", 8) == 0 || strncmp(base, "ld-2.", 5) == 0) {
    for (int i = 0; i < info->dlpi_phnum; ++i) {
      const ElfW(Phdr)& ph = info->dlpi_phdr[i];
      if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
        g_loader_text_lo = info->dlpi_addr + ph.p_vaddr;
        g_loader_text_hi = g_loader_text_lo + ph.p_memsz;
      }
    }
  }
  return 0;
}

void patch_module(dl_phdr_info* info) {
  uintptr_t base = info->dlpi_addr;
  const ElfW(Dyn)* dyn = nullptr;
  uintptr_t relro_lo = 0, relro_hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn)*>(base + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      relro_lo = base + ph.p_vaddr;
      relro_hi = relro_lo + ph.p_memsz;
    }
  }
  if (!dyn) return;
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  size_t strsz = 0;
  const ElfW(Rela)* jmprel = nullptr;
  size_t pltrelsz = 0;
  const ElfW(Rela)* rela = nullptr;
  size_t relasz = 0;
  // d_ptr values are already relocated by ld.so on x86-64 glibc (absolute), except in the
  // vDSO which we skip. Guard against unrelocated (small) values anyway.
  auto addr = [base](ElfW(Addr) a) -> uintptr_t { return a < base ? base + a : a; };
  for (const ElfW(Dyn)* d = dyn; d->d_tag != DT_NULL; ++d) {
    switch (d->d_tag) {
      case DT_SYMTAB: symtab = reinterpret_cast<const ElfW(Sym)*>(addr(d->d_un.d_ptr)); break;
      case DT_STRTAB: strtab = reinterpret_cast<const char*>(addr(d->d_un.d_ptr)); break;
      case DT_STRSZ: strsz = d->d_un.d_val; break;
      case DT_JMPREL: jmprel = reinterpret_cast<const ElfW(Rela)*>(addr(d->d_un.d_ptr)); break;
      case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
      case DT_RELA: rela = reinterpret_cast<const ElfW(Rela)*>(addr(d->d_un.d_ptr)); break;
      case DT_RELASZ: relasz = d->d_un.d_val; break;
      default: break;
    }
  }
  if (!symtab || !strtab) return;
  size_t nhooks;
  const HookEntry* hooks = hook_table(&nhooks);
  // The first letters of the hooked names, from the table itself (a hand-kept list once missed
  // the wait family's 'w').
  bool first_letters[256] = {};
  for (size_t h = 0; h < nhooks; ++h) first_letters[static_cast<unsigned char>(hooks[h].name[0])] = true;
  auto scan = [&](const ElfW(Rela)* r, size_t bytes) {
    if (!r) return;
    for (size_t i = 0; i < bytes / sizeof(ElfW(Rela)); ++i) {
      uint32_t type = ELF64_R_TYPE(r[i].r_info);
      if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
      uint32_t si = ELF64_R_SYM(r[i].r_info);
      if (si == 0) continue;
      ElfW(Word) off = symtab[si].st_name;
      if (strsz && off >= strsz) continue;
      const char* name = strtab + off;
      if (!first_letters[static_cast<unsigned char>(name[0])]) continue;  // most names: one load
      for (size_t h = 0; h < nhooks; ++h)
        if (strcmp(name, hooks[h].name) == 0) {
          // Only slots bound to the C library (or still to this module's own lazy-binding stub):
          // a malloc from jemalloc or tcmalloc must keep going there, or blocks it handed out
          // before we came would be freed by glibc's free.
          // Allocator slots not yet bound (lazy binding) would bind to whatever the program's
          // malloc is: skip them all when that is not the C library's.
          void* original = *reinterpret_cast<void**>(base + r[i].r_offset);
          bool alloc_hook = h < kAllocHooks;
          if (original != hooks[h].hook &&
              ((alloc_hook && g_foreign_allocator) ||
               (!in_module(info, original) && !in_main(original) && !in_libc(original)))) {
            if (alloc_hook) g_foreign_allocator = true;
            break;
          }
          patch_slot(base + r[i].r_offset, hooks[h].hook, relro_lo, relro_hi);
          break;
        }
    }
  };
  scan(jmprel, pltrelsz);
  scan(rela, relasz);
}

int patch_cb(dl_phdr_info* info, size_t, void*) {
  if (skip_module(info)) return 0;
  uintptr_t dyn = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
  if (seen(g_patched, g_npatched, info->dlpi_addr, dyn)) return 0;
  g_cur_base = info->dlpi_addr;
  g_cur_dyn = dyn;
  patch_module(info);
  if (g_npatched < kMaxModules) g_patched[g_npatched++] = Seen{info->dlpi_addr, dyn};
  return 0;
}

int describe_cb(dl_phdr_info* info, size_t, void*) {
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  if (strstr(name, "linux-vdso")) return 0;
  uintptr_t dyn = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
  if (seen(g_described, g_ndescribed, info->dlpi_addr, dyn)) return 0;
  if (g_ndescribed < kMaxModules) g_described[g_ndescribed++] = Seen{info->dlpi_addr, dyn};
  char path[4096];
  if (name[0] == 0) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = 0;
  } else {
    snprintf(path, sizeof path, "%s", name);
  }
  // build-id from PT_NOTE
  const uint8_t* bid = nullptr;
  size_t bid_len = 0;
  for (int i = 0; i < info->dlpi_phnum && !bid; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const uint8_t* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
    const uint8_t* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const ElfW(Nhdr)* nh = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const uint8_t* nname = p + sizeof(ElfW(Nhdr));
      const uint8_t* desc = nname + ((nh->n_namesz + 3) & ~3u);
      if (desc + nh->n_descsz > end) break;
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(nname, "GNU", 4) == 0) {
        bid = desc;
        bid_len = nh->n_descsz;
        break;
      }
      p = desc + ((nh->n_descsz + 3) & ~3u);
    }
  }
  uint8_t rec[4096 + 256 + 64 * 20];
  uint8_t* p = rec;
  *p++ = capture::kModule;
  p = capture::put_bytes(p, path, strlen(path));
  p = capture::put_varint(p, info->dlpi_addr);
  p = capture::put_bytes(p, bid, bid_len > 64 ? 64 : bid_len);
  int nload = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) nload += info->dlpi_phdr[i].p_type == PT_LOAD;
  if (nload > 64) nload = 64;
  p = capture::put_varint(p, static_cast<uint64_t>(nload));
  for (int i = 0, k = 0; i < info->dlpi_phnum && k < nload; ++i) {
    if (info->dlpi_phdr[i].p_type != PT_LOAD) continue;
    p = capture::put_varint(p, info->dlpi_phdr[i].p_vaddr);
    p = capture::put_varint(p, info->dlpi_phdr[i].p_memsz);
    ++k;
  }
  emit_def_locked(rec, static_cast<size_t>(p - rec));
  return 0;
}

}  // namespace

SelfModule g_self;

void self_module_init() {
  Dl_info di;
  if (!dladdr(reinterpret_cast<void*>(&self_module_init), &di)) return;
  // The object whose PT_LOAD segments contain our own code: its bias and executable range.
  struct Ctx {
    uintptr_t code;
    SelfModule self;
  } ctx{reinterpret_cast<uintptr_t>(&self_module_init), {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* vc) {
        auto* c = static_cast<Ctx*>(vc);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X) || c->code < lo || c->code >= lo + ph.p_memsz) continue;
          c->self = SelfModule{info->dlpi_addr, lo, lo + ph.p_memsz};
          return 1;
        }
        return 0;
      },
      &ctx);
  g_self = ctx.self;
}

void patch_all_modules() {
  // A dlopen hook still running when a detach restored the slots must not patch them again.
  if (!g_enabled.load(std::memory_order_acquire)) return;
  pthread_mutex_lock(&g_patch_mutex);
  if (g_main_obj.n == 0) {
    bool first = true;
    dl_iterate_phdr(objects_cb, &first);
    // Which malloc does the program get? Not the C library's (jemalloc or tcmalloc preloaded or
    // linked): leave every allocator slot alone. A non-PIE program's canonical PLT stub counts
    // as the C library's.
    void* m = g_real.dlsym(RTLD_DEFAULT, "malloc");
    if (m && m != reinterpret_cast<void*>(g_real.malloc) && !in_main(m)) g_foreign_allocator = true;
  }
  if (g_enabled.load(std::memory_order_acquire)) dl_iterate_phdr(patch_cb, nullptr);  // again, under the lock
  static bool said = false;
  bool say_foreign = g_foreign_allocator && !said;
  said = said || say_foreign;
  pthread_mutex_unlock(&g_patch_mutex);
  if (say_foreign)
    agent_message("leakscope: the program's malloc is not the C library's (jemalloc, tcmalloc...): calls that go "
                  "to it are not tracked");
  defs_lock();
  emit_modules_locked();
  defs_unlock();
}

void emit_modules_locked() { dl_iterate_phdr(describe_cb, nullptr); }

namespace {
// Modules loaded now, for the restore: (base, dynamic section).
int collect_cb(dl_phdr_info* info, size_t, void* out) {
  auto* v = static_cast<std::pair<Seen*, int*>*>(out);
  uintptr_t dyn = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) dyn = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
  if (*v->second < kMaxModules) v->first[(*v->second)++] = Seen{info->dlpi_addr, dyn};
  return 0;
}
}  // namespace

size_t unpatch_all_modules() {
  pthread_mutex_lock(&g_patch_mutex);
  static Seen loaded[kMaxModules];
  int nloaded = 0;
  std::pair<Seen*, int*> out{loaded, &nloaded};
  dl_iterate_phdr(collect_cb, &out);
  size_t restored = 0;
  for (size_t i = g_nslots; i-- > 0;) {  // newest first: a slot patched twice ends at its first original
    const Patched& s = g_slots[i];
    if (!seen(loaded, nloaded, s.base, s.dyn)) continue;  // dlclosed since
    if (__atomic_load_n(reinterpret_cast<void**>(s.slot), __ATOMIC_ACQUIRE) != s.hook) continue;  // changed by someone else
    restored += write_slot(s.slot, s.original, s.relro_lo, s.relro_hi);
  }
  g_nslots = 0;
  g_npatched = 0;
  g_ndescribed = 0;  // a later attach writes a new capture: describe every module again
  pthread_mutex_unlock(&g_patch_mutex);
  return restored;
}

void release_code_pages() {
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) {
        const char* name = info->dlpi_name ? info->dlpi_name : "";
        bool ours = (g_self.bias != 0 && info->dlpi_addr == g_self.bias) || strstr(name, "/libzstd.so") ||
                    strstr(name, "/libunwind.so") || strstr(name, "/libunwind-x86_64.so");
        if (!ours) return 0;
        long page = sysconf(_SC_PAGESIZE);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X) || (ph.p_flags & PF_W)) continue;
          uintptr_t lo = (info->dlpi_addr + ph.p_vaddr + static_cast<uintptr_t>(page) - 1) & ~static_cast<uintptr_t>(page - 1);
          uintptr_t hi = (info->dlpi_addr + ph.p_vaddr + ph.p_memsz) & ~static_cast<uintptr_t>(page - 1);
          if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
        }
        return 0;
      },
      nullptr);
}

bool foreign_allocator() { return g_foreign_allocator; }

// A followed fork child: a dlopen hook of another thread may have held the patch lock at the
// fork; that thread is gone.
void patch_after_fork_child() { pthread_mutex_init(&g_patch_mutex, nullptr); }

}  // namespace leakscope::agent
