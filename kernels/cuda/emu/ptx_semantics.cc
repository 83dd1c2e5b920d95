// The PTX the templates use (kernels/cuda/ptx.cuh), computed for a whole warp once its 32 lanes have arrived at the
// collective (sched.cc): mma.sync from the PTX ISA's fragment layouts, ldmatrix from its row-address rule.
#include <string.h>

#include <string>

#include "include/kiln_emu_half.h"
#include "runtime.h"

namespace kiln_emu {
namespace {

std::string hex(unsigned v) {
  char b[16];
  snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

uint32_t tf32(uint32_t bits) { return bits & 0xffffe000u; }  // tensor cores read the top 19 bits of tf32 operands
float asF(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
float half16(uint16_t h, int op) { return op == 0 ? bf16_bits_to_f32(h) : f16_bits_to_f32(h); }

}  // namespace

// D = A * B + C for one m16n8k16 (op 0 bf16, 1 f16) or m16n8k8 tf32 (op 2), from the PTX ISA fragment layouts:
// g = lane / 4, t = lane % 4. k16: A reg r holds (row g + 8 (r & 1), cols 2t + 8 (r >> 1) + {0, 1}), B reg r holds
// (rows 2t + 8 r + {0, 1}, col g). k8 tf32: A reg r holds (row g + 8 (r & 1), col t + 4 (r >> 1)), B reg r holds
// (row t + 4 r, col g). C / D: reg i holds (row g + 8 (i >> 1), col 2t + (i & 1)).
void mmaSync(int op, const void* const in[32], void* const out[32]) {
  const int K = op == 2 ? 8 : 16;
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int gq = lane >> 2, t = lane & 3;
    const uint32_t* a = static_cast<const uint32_t*>(in[lane]);
    const uint32_t* b = a + 4;
    const float* c = reinterpret_cast<const float*>(a + 6);
    for (int r = 0; r < 4; ++r) {
      if (op == 2) {
        A[gq + 8 * (r & 1)][t + 4 * (r >> 1)] = asF(tf32(a[r]));
      } else {
        A[gq + 8 * (r & 1)][2 * t + 8 * (r >> 1)] = half16(static_cast<uint16_t>(a[r] & 0xffff), op);
        A[gq + 8 * (r & 1)][2 * t + 8 * (r >> 1) + 1] = half16(static_cast<uint16_t>(a[r] >> 16), op);
      }
    }
    for (int r = 0; r < 2; ++r) {
      if (op == 2) {
        B[t + 4 * r][gq] = asF(tf32(b[r]));
      } else {
        B[2 * t + 8 * r][gq] = half16(static_cast<uint16_t>(b[r] & 0xffff), op);
        B[2 * t + 8 * r + 1][gq] = half16(static_cast<uint16_t>(b[r] >> 16), op);
      }
    }
    for (int i = 0; i < 4; ++i) C[gq + 8 * (i >> 1)][2 * t + (i & 1)] = c[i];
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int gq = lane >> 2, t = lane & 3;
    float* d = static_cast<float*>(out[lane]);
    for (int i = 0; i < 4; ++i) {
      const int row = gq + 8 * (i >> 1), col = 2 * t + (i & 1);
      float acc = C[row][col];
      for (int k = 0; k < K; ++k) acc += A[row][k] * B[k][col];  // products are exact in f32; k ascending
      d[i] = acc;
    }
  }
}

// ldmatrix.m8n8.x{1,2,4}[.trans].b16: lane 8j + r gives the address of row r of matrix j; register j of lane l
// receives matrix j's (row l / 4, cols 2 (l % 4) + {0, 1}), or with .trans (rows 2 (l % 4) + {0, 1}, col l / 4).
void ldmatrixSync(int num, int trans, const void* const in[32], void* const out[32], const char* file, int line) {
  uint16_t m[4][8][8];
  for (int j = 0; j < num; ++j)
    for (int r = 0; r < 8; ++r) {
      const void* row = in[8 * j + r];
      const uintptr_t a = reinterpret_cast<uintptr_t>(row);
      if (a % 16 != 0 || !isShared(row, 16))
        fail(kMisalignedAddress, "ldmatrix: lane " + std::to_string(8 * j + r) + " gives row address " + hex(static_cast<unsigned>(a)) +
                                     ", which is not a 16-byte aligned shared-memory address (" + std::string(file) + ":" + std::to_string(line) + ")");
      if (failed()) return;
      recordSharedRead(row, 16, 0);
      memcpy(m[j][r], row, 16);
    }
  for (int lane = 0; lane < 32; ++lane) {
    uint32_t* regs = static_cast<uint32_t*>(out[lane]);
    for (int j = 0; j < num; ++j) {
      const int r = lane >> 2, c = 2 * (lane & 3);
      const uint16_t lo = trans ? m[j][c][r] : m[j][r][c], hi = trans ? m[j][c + 1][r] : m[j][r][c + 1];
      regs[j] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
    }
  }
}


}  // namespace kiln_emu
