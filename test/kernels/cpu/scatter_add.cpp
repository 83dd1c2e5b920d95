// Driver for kiln::scatter_add_f32. argv: outer n_idx inner size seed
// Draws idx first (next() % size, n_idx of them), then upd [outer, n_idx, inner]. Prints out [outer, size, inner].
#include "common.h"
#include "scatter_add.h"

int main(int argc, char** argv) {
  const int64_t outer = arg(argc, argv, 1), n_idx = arg(argc, argv, 2), inner = arg(argc, argv, 3);
  const int64_t size = arg(argc, argv, 4);
  Rng rng(uint32_t(arg(argc, argv, 5)));
  std::vector<int32_t> idx(n_idx);
  for (auto& i : idx) i = int32_t(rng.next() % uint32_t(size));
  const auto upd = rng.fill(outer * n_idx * inner);
  std::vector<float> out(outer * size * inner, 777.0f);  // garbage: the kernel must zero it
  kiln::scatter_add_f32(outer, n_idx, inner, size, upd.data(), idx.data(), out.data());
  print("out", out);
  return 0;
}
