/** The CLIP transformer encoder shared by the text and vision towers (transformers' CLIPEncoderLayer keys:
 * layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2), pre-LN. */
import { gelu, sdpa, type Tensor } from '../../compiler/index';
import { LayerNorm, Linear, type ParamScope } from '../nn/index';
// Globals are bound once per module: every global lookup is slow inside jest's vm contexts.
const M = Math;

export type ClipActivation = 'quick_gelu' | 'gelu';

export interface ClipEncoderConfig {
  hiddenSize: number;
  layers: number;
  heads: number;
  intermediateSize: number;
  act: ClipActivation;
  eps: number;
}

const activate = (x: Tensor, act: ClipActivation): Tensor => (act === 'gelu' ? gelu(x) : x.mul(x.mul(1.702).sigmoid()));

export class ClipEncoderLayer {
  readonly ln1: LayerNorm; readonly q: Linear; readonly k: Linear; readonly v: Linear; readonly o: Linear;
  readonly ln2: LayerNorm; readonly fc1: Linear; readonly fc2: Linear;
  constructor(s: ParamScope, readonly c: ClipEncoderConfig) {
    const d = c.hiddenSize, a = s.child('self_attn');
    this.ln1 = new LayerNorm(s.child('layer_norm1'), d, c.eps);
    this.q = new Linear(a.child('q_proj'), d, d);
    this.k = new Linear(a.child('k_proj'), d, d);
    this.v = new Linear(a.child('v_proj'), d, d);
    this.o = new Linear(a.child('out_proj'), d, d);
    this.ln2 = new LayerNorm(s.child('layer_norm2'), d, c.eps);
    this.fc1 = new Linear(s.child('mlp.fc1'), d, c.intermediateSize);
    this.fc2 = new Linear(s.child('mlp.fc2'), c.intermediateSize, d);
  }
  forward(x: Tensor, causal: boolean): Tensor {
    const [b, l, d] = x.shape, h = this.c.heads, hd = d / h;
    const split = (t: Tensor) => t.reshape([b, l, h, hd]).permute([0, 2, 1, 3]);
    const n = this.ln1.forward(x);
    const att = sdpa(split(this.q.forward(n)), split(this.k.forward(n)), split(this.v.forward(n)), { causal, scale: 1 / M.sqrt(hd) });
    const y = x.add(this.o.forward(att.permute([0, 2, 1, 3]).reshape([b, l, d])));
    return y.add(this.fc2.forward(activate(this.fc1.forward(this.ln2.forward(y)), this.c.act)));
  }
}

export class ClipEncoder {
  readonly layers: ClipEncoderLayer[];
  constructor(s: ParamScope, c: ClipEncoderConfig, count = c.layers) {
    this.layers = Array.from({ length: count }, (_v, i) => new ClipEncoderLayer(s.child(`layers.${i}`), c));
  }
  /** transformers' `hidden_states`: [input, after layer 1, ..., after the last built layer]. */
  forward(x: Tensor, causal: boolean): Tensor[] {
    const states = [x];
    for (const l of this.layers) states.push(l.forward(states[states.length - 1], causal));
    return states;
  }
}
