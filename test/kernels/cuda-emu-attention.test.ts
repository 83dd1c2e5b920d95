/** kernels/cuda/attention.cuh (tiled flash attention: forward with lse, backward stats, dQ, dK/dV) and
 * attention_small.cuh (head dims not a multiple of 4) on the CUDA emulator with memcheck, racecheck and
 * initcheck, against the float64 softmax reference of reference.ts: lq != lk both ways, lk = 77, causal
 * and not, several query / key tiles, D = DV = 64 (f32 and bf16 inputs, rounded in the reference) and
 * D = 16, DV = 8. Backward kernels take lse / delta from the stats kernel, which is checked too. Bound: REL
 * in harness.ts. Every epilogue (dK and dV separately) must run exactly once. */
import { f32Param } from '../../runtime/cuda';
import { expectClose, Rng } from './harness';
import { EmuDriver, quantize, type Dtype } from './emu-harness';
import { attnRef, type AttnCase } from './reference';

function smem(d: number, dv: number) {
  const BQ = 64, BKV = 64, LD = d + 4, LDV = dv + 4, LP = BKV + 4, LPQ = BQ + 4;
  return {
    fwd: (BQ * LD + BKV * LD + BKV * LDV + BQ * LP) * 4,
    dq: (BQ * LD + BQ * LDV + BKV * LD + BKV * LDV + BQ * LP + 2 * BQ) * 4,
    dkdv: (BKV * LD + BKV * LDV + BQ * LD + BQ * LDV + 2 * BKV * LPQ + 2 * BQ) * 4,
  };
}

function inputs(drv: EmuDriver, c: AttnCase, dt: Dtype, seed: number) {
  const { nb, lq, lk, d, dv } = c;
  const rng = new Rng(seed);
  const q = quantize(rng.fill(nb * lq * d), dt);
  const k = quantize(rng.fill(nb * lk * d), dt);
  const v = quantize(rng.fill(nb * lk * dv), dt);
  const dO = quantize(rng.fill(nb * lq * dv), dt);
  const scale = Math.fround(1 / Math.sqrt(d));
  const ref = attnRef(c, q.values, k.values, v.values, dO.values, scale);
  drv.reset();
  const bufs = { q: drv.buf('q', q.bytes), k: drv.buf('k', k.bytes), v: drv.buf('v', v.bytes), dO: drv.buf('dout', dO.bytes) };
  return { ref, bufs, scale: f32Param(scale) };
}

/** Every tiled kernel of one <D, DV, T> instantiation on one shape. */
function runTiled(drv: EmuDriver, suffix: string, dt: Dtype, c: AttnCase, seed: number): void {
  const { nb, lq, lk, d, dv, causal } = c;
  const { ref, bufs, scale } = inputs(drv, c, dt, seed);
  const sm = smem(d, dv);
  const tail = [lq, lk, scale, causal];
  const qGrid: [number, number, number] = [Math.ceil(lq / 64), nb, 1];
  const out = drv.buf('out', nb * lq * dv * 4);
  const cOut = drv.counter('count_out', nb * lq * dv);
  const lse0 = drv.buf('lse_fwd', nb * lq * 4);
  drv.launch(`emu_attn_fwd_${suffix}`, qGrid, 256, sm.fwd, [out, cOut, lse0, bufs.q, bufs.k, bufs.v, ...tail]);
  drv.expectOnce(cOut);
  expectClose(drv.f32(out), ref.out.ref, ref.out.mag, 'forward');
  expectClose(drv.f32(lse0), ref.lse.ref, ref.lse.mag, 'forward lse');

  const lse = drv.buf('lse', nb * lq * 4);
  const delta = drv.buf('delta', nb * lq * 4);
  drv.launch(`emu_attn_stats_${suffix}`, qGrid, 256, sm.fwd, [lse, delta, bufs.q, bufs.k, bufs.v, bufs.dO, ...tail]);
  expectClose(drv.f32(lse), ref.lse.ref, ref.lse.mag, 'stats lse');
  expectClose(drv.f32(delta), ref.delta.ref, ref.delta.mag, 'stats delta');

  const dq = drv.buf('dq', nb * lq * d * 4);
  const cq = drv.counter('count_dq', nb * lq * d);
  drv.launch(`emu_attn_dq_${suffix}`, qGrid, 256, sm.dq, [dq, cq, bufs.q, bufs.k, bufs.v, bufs.dO, lse, delta, ...tail]);
  drv.expectOnce(cq);
  expectClose(drv.f32(dq), ref.dq.ref, ref.dq.mag, 'dQ');

  const dk = drv.buf('dk', nb * lk * d * 4);
  const dvb = drv.buf('dv', nb * lk * dv * 4);
  const ck = drv.counter('count_dk', nb * lk * d);
  const cv = drv.counter('count_dv', nb * lk * dv);
  drv.launch(`emu_attn_dkdv_${suffix}`, [Math.ceil(lk / 64), nb, 1], 256, sm.dkdv, [dk, dvb, ck, cv, bufs.q, bufs.k, bufs.v, bufs.dO, lse, delta, ...tail]);
  drv.expectOnce(ck);
  drv.expectOnce(cv);
  expectClose(drv.f32(dk), ref.dk.ref, ref.dk.mag, 'dK');
  expectClose(drv.f32(dvb), ref.dv.ref, ref.dv.mag, 'dV');
}

/** attention_small.cuh: forward and the three gradients, one thread per output row. */
function runSmall(drv: EmuDriver, c: AttnCase, seed: number): void {
  const { nb, lq, lk, d, dv, causal } = c;
  const { ref, bufs, scale } = inputs(drv, c, 'f32', seed);
  const dims = [nb, lq, lk, d, dv, scale, causal];
  const out = drv.buf('out', nb * lq * dv * 4);
  const cOut = drv.counter('count_out', nb * lq * dv);
  drv.launch('emu_attn_small_fwd', [Math.ceil((nb * lq) / 256), 1, 1], 256, 0, [out, cOut, bufs.q, bufs.k, bufs.v, ...dims]);
  drv.expectOnce(cOut);
  expectClose(drv.f32(out), ref.out.ref, ref.out.mag, 'small forward');
  const grads = [ref.dq, ref.dk, ref.dv];
  for (let wrt = 0; wrt < 3; wrt++) {
    const n = grads[wrt].ref.length;
    const g = drv.buf(`grad${wrt}`, n * 4);
    const cg = drv.counter(`count_grad${wrt}`, n);
    const rows = nb * (wrt === 0 ? lq : lk);
    drv.launch('emu_attn_small_grad', [Math.ceil(rows / 256), 1, 1], 256, 0, [g, cg, bufs.q, bufs.k, bufs.v, bufs.dO, wrt, ...dims]);
    drv.expectOnce(cg);
    expectClose(drv.f32(g), grads[wrt].ref, grads[wrt].mag, ['small dQ', 'small dK', 'small dV'][wrt]);
  }
}

const tiled: [string, string, Dtype, AttnCase][] = [
  ['D 64 f32: lq 33 < lk 77, 2 key tiles', 'd64_f32', 'f32', { nb: 2, lq: 33, lk: 77, d: 64, dv: 64, causal: 0 }],
  ['D 64 f32: causal, lq 77 > lk 20', 'd64_f32', 'f32', { nb: 1, lq: 77, lk: 20, d: 64, dv: 64, causal: 1 }],
  ['D 64 f32: causal, lk 77 > lq 50 (keys past lq get zero gradients)', 'd64_f32', 'f32', { nb: 1, lq: 50, lk: 77, d: 64, dv: 64, causal: 1 }],
  ['D 64 f32: causal, lq 130, lk 77 (3 query tiles)', 'd64_f32', 'f32', { nb: 1, lq: 130, lk: 77, d: 64, dv: 64, causal: 1 }],
  ['D 64 f32: single key', 'd64_f32', 'f32', { nb: 2, lq: 5, lk: 1, d: 64, dv: 64, causal: 0 }],
  ['D 64 bf16: lq 70 > lk 45', 'd64_bf16', 'bf16', { nb: 1, lq: 70, lk: 45, d: 64, dv: 64, causal: 0 }],
  ['D 64 bf16: causal, lq = lk = 77', 'd64_bf16', 'bf16', { nb: 1, lq: 77, lk: 77, d: 64, dv: 64, causal: 1 }],
  ['D 16, DV 8 f32: lq 20 < lk 77', 'd16v8_f32', 'f32', { nb: 3, lq: 20, lk: 77, d: 16, dv: 8, causal: 0 }],
  ['D 16, DV 8 f32: causal, lq 66 > lk 65', 'd16v8_f32', 'f32', { nb: 1, lq: 66, lk: 65, d: 16, dv: 8, causal: 1 }],
];
const small: [string, AttnCase][] = [
  ['d 6, dv 5: lq 20 > lk 13', { nb: 2, lq: 20, lk: 13, d: 6, dv: 5, causal: 0 }],
  ['d 3, dv 7: causal, lq 9 < lk 33', { nb: 1, lq: 9, lk: 33, d: 3, dv: 7, causal: 1 }],
  ['d 5, dv 6: lk 77, lq 3', { nb: 1, lq: 3, lk: 77, d: 5, dv: 6, causal: 0 }],
  ['d 7, dv 2: causal, lq 300 > lk 4 (2 blocks)', { nb: 1, lq: 300, lk: 4, d: 7, dv: 2, causal: 1 }],
];
const seedOf = (c: AttnCase) => 999 + c.lq * 31 + c.lk * 7 + c.d;

describe.each([true, false])('attention.cuh / attention_small.cuh on the CUDA emulator (checks %s)', (checks) => {
  let drv: EmuDriver;
  beforeAll(async () => {
    drv = await EmuDriver.load('attention', checks);
  });
  it.each(checks ? tiled : tiled.slice(0, 1))('%s', (_n, suffix, dt, c) => runTiled(drv, suffix, dt, c, seedOf(c)));
  it.each(checks ? small : small.slice(0, 1))('small: %s', (_n, c) => runSmall(drv, c, seedOf(c)));
});

