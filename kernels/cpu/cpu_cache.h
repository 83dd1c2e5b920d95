// kiln::cpu_caches — the data cache sizes the GEMM blocking is derived from (gemm.h gemm_blocking), read once.
//
// Sources, first that answers: cpuid leaf 4 (Intel deterministic cache parameters), cpuid 0x8000001D (AMD
// topology extensions, same format), AMD's legacy leaves 0x80000005 (L1d) / 0x80000006 (L2, L3), then
// /sys/devices/system/cpu/cpu0/cache/index*/ (any architecture); sizes still unknown take 32 KiB / 512 KiB /
// 8 MiB. Virtual machines often hide leaf 4 and sysfs but keep the legacy leaves (this project's CI machine).
// `source` names what answered; kiln_cpu_isa() reports it, so explain() shows it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace kiln {

struct CpuCaches {
  int64_t l1d = 0, l2 = 0, l3 = 0;  // bytes (per core for L1d / L2; the whole L3)
  char source[48] = "defaults";
};

namespace cache_detail {

#if defined(__x86_64__)
// Leaf 4 / 0x8000001D: subleaf i describes one cache; type 0 ends the list.
inline bool from_leaf(unsigned leaf, CpuCaches& c) {
  bool any = false;
  for (unsigned i = 0; i < 16; ++i) {
    unsigned a, b, cx, d;
    __cpuid_count(leaf, i, a, b, cx, d);
    const unsigned type = a & 31u, level = (a >> 5) & 7u;
    if (type == 0) break;
    if (type == 2) continue;  // instruction cache
    const int64_t size = int64_t((b >> 22) + 1) * (((b >> 12) & 1023u) + 1) * ((b & 4095u) + 1) * (int64_t(cx) + 1);
    if (level == 1) c.l1d = size;
    else if (level == 2) c.l2 = size;
    else if (level == 3) c.l3 = size;
    any = true;
  }
  return any;
}
#endif

inline int64_t sysfs_size(int index, int& level, bool& data) {
  char path[96], buf[64];
  auto read = [&](const char* leaf) -> bool {
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/%s", index, leaf);
    FILE* f = std::fopen(path, "r");
    if (!f) return false;
    const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
    std::fclose(f);
    return ok;
  };
  if (!read("level")) return -1;
  level = std::atoi(buf);
  if (!read("type")) return -1;
  data = std::strncmp(buf, "Instruction", 11) != 0;
  if (!read("size")) return -1;
  char* end = nullptr;
  int64_t v = std::strtoll(buf, &end, 10);
  if (end && (*end == 'K' || *end == 'k')) v <<= 10;
  else if (end && *end == 'M') v <<= 20;
  return v;
}

inline CpuCaches detect() {
  CpuCaches c;
#if defined(__x86_64__)
  unsigned a, b, cx, d;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr), max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_leaf >= 4 && from_leaf(4, c) && c.l1d > 0) {
    std::snprintf(c.source, sizeof c.source, "cpuid leaf 4");
  } else if (max_ext >= 0x8000001Du && from_leaf(0x8000001Du, c) && c.l1d > 0) {
    std::snprintf(c.source, sizeof c.source, "cpuid 0x8000001D");
  } else if (max_ext >= 0x80000006u) {
    __cpuid(0x80000005u, a, b, cx, d);
    c.l1d = int64_t(cx >> 24) << 10;
    __cpuid(0x80000006u, a, b, cx, d);
    c.l2 = int64_t(cx >> 16) << 10;
    c.l3 = int64_t(d >> 18) << 19;
    if (c.l1d > 0) std::snprintf(c.source, sizeof c.source, "cpuid 0x80000005/6");
  }
#endif
  if (c.l1d <= 0) {
    for (int i = 0; i < 8; ++i) {
      int level = 0;
      bool data = false;
      const int64_t v = sysfs_size(i, level, data);
      if (v < 0) break;
      if (!data) continue;
      if (level == 1) c.l1d = v;
      else if (level == 2) c.l2 = v;
      else if (level == 3) c.l3 = v;
    }
    if (c.l1d > 0) std::snprintf(c.source, sizeof c.source, "sysfs");
  }
  if (c.l1d <= 0) c.l1d = 32 << 10;
  if (c.l2 <= 0) c.l2 = 512 << 10;
  if (c.l3 <= 0) c.l3 = 8 << 20;
  return c;
}

}  // namespace cache_detail

inline const CpuCaches& cpu_caches() {
  static const CpuCaches c = cache_detail::detect();
  return c;
}

}  // namespace kiln
