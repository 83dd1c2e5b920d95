/**
 * IResNet weights from an ONNX export (insightface's antelopev2 `glintr100.onnx`, or any `torch.onnx.export` of
 * arcface_torch's iresnet): the graph is followed by data flow from the stem conv (the first Conv over 3 channels)
 * and each node's initializer inputs are mapped onto iresnet.ts's parameter names. Initializer names are whatever
 * the exporter chose (`onnx::Conv_523`, `layer1.0.bn1.weight`, `1187`), so the structure, not the name, says which
 * conv a weight belongs to; a missing initializer is an OnnxMissingInitializerError naming it, a node where the
 * IResNet has none an OnnxGraphError naming the node.
 *
 * A BatchNormalization right after a Conv (an export without constant folding) is folded into the conv here
 * (w·s, (b − mean)·s + β with s = γ/√(var+ε), in float64); the other BNs become scale/shift. The config (stem,
 * widths, blocks per layer, embedding) is read off the graph, so the same loader takes iresnet50 and iresnet100;
 * `expect` checks it.
 */
import type { ParamStore } from '../../compiler/index';
import { OnnxGraphError, OnnxMissingInitializerError, openOnnx, type OnnxModel, type OnnxNode } from '../io/onnx';
import { iresnetBlocks, iresnetParamShapes, type IResNetConfig } from './iresnet';

export interface IResNetWeights { config: IResNetConfig; params: ParamStore }

interface Folded { w: Float64Array; b: Float64Array; shape: number[]; out: string; stride: number }

const PASS_THROUGH = ['Identity', 'Dropout', 'Unsqueeze', 'Squeeze'];
const SHAPE_ONLY = ['Identity', 'Unsqueeze', 'Squeeze', 'Reshape'];

class Tracer {
  readonly consumers = new Map<string, OnnxNode[]>();
  readonly producer = new Map<string, OnnxNode>();
  constructor(readonly m: OnnxModel) {
    for (const n of m.nodes) {
      for (const i of n.inputs) { const l = this.consumers.get(i) ?? []; l.push(n); this.consumers.set(i, l); }
      for (const o of n.outputs) this.producer.set(o, n);
    }
  }
  fail(node: OnnxNode | string | undefined, detail: string): never {
    const label = typeof node === 'object' ? node.name || node.outputs[0] || node.opType : String(node);
    throw new OnnxGraphError(this.m.path, label, `not an IResNet: ${detail}`);
  }
  /** The one node of `ops` reading `tensor` (the others may read it too). */
  next(tensor: string, ops: readonly string[], what: string): OnnxNode {
    const found = (this.consumers.get(tensor) ?? []).filter((n) => ops.includes(n.opType));
    if (found.length !== 1) this.fail(tensor, `expected one ${ops.join('/')} (${what}) reading "${tensor}", found ${found.length}`);
    return found[0];
  }
  maybe(tensor: string, op: string): OnnxNode | undefined {
    const found = this.consumers.get(tensor) ?? [];
    return found.length === 1 && found[0].opType === op ? found[0] : undefined;
  }
  init(node: OnnxNode, index: number, what: string): { data: Float64Array; dims: readonly number[] } {
    let name = node.inputs[index];
    if (!name) this.fail(node, `${node.opType} has no input ${index} (${what})`);
    // An export without constant folding reshapes some weights in the graph (PReLU's slope: Unsqueeze to [C,1,1]).
    for (let p = this.producer.get(name); p && !this.m.initializers.has(name) && SHAPE_ONLY.includes(p.opType); p = this.producer.get(name)) name = p.inputs[0];
    if (!this.m.initializers.has(name)) throw new OnnxMissingInitializerError(this.m.path, [name], `${what} of ${node.opType} node "${node.name}"`);
    return { data: this.m.read(name), dims: this.m.initializers.get(name)!.dims };
  }
  /** A BatchNormalization node as y = x·scale + shift. */
  bn(node: OnnxNode, what: string): { scale: Float64Array; shift: Float64Array } {
    const eps = (node.attributes.get('epsilon') as number | undefined) ?? 1e-5;
    const [g, b, mean, v] = [1, 2, 3, 4].map((i) => this.init(node, i, `${what} ${['scale', 'bias', 'mean', 'var'][i - 1]}`).data);
    if (b.length !== g.length || mean.length !== g.length || v.length !== g.length) this.fail(node, `${what}: scale, bias, mean, var of ${g.length}, ${b.length}, ${mean.length}, ${v.length} values`);
    const scale = g.map((gi, c) => gi / Math.sqrt(v[c] + eps));
    return { scale, shift: b.map((bi, c) => bi - mean[c] * scale[c]) };
  }
  /** A Conv node, with the BatchNormalization that alone reads it folded in. */
  conv(node: OnnxNode, what: string): Folded {
    const { data: w, dims } = this.init(node, 1, `${what} weight`);
    if (dims.length !== 4 || dims[2] !== dims[3]) this.fail(node, `${what} weight has shape [${dims.join(',')}]`);
    const [o, , k] = dims;
    const attr = (n: string) => node.attributes.get(n) as readonly number[] | number | undefined;
    const strides = (attr('strides') as readonly number[] | undefined) ?? [1, 1];
    const pads = (attr('pads') as readonly number[] | undefined) ?? [0, 0, 0, 0];
    if ((attr('group') ?? 1) !== 1 || ((attr('dilations') as readonly number[] | undefined) ?? [1, 1]).some((d) => d !== 1)) this.fail(node, `${what}: grouped or dilated conv`);
    if (strides[0] !== strides[1] || pads.some((p) => p !== (k - 1) / 2)) this.fail(node, `${what}: strides [${strides}] pads [${pads}] for a ${k}×${k} conv`);
    const b = node.inputs[2] ? this.init(node, 2, `${what} bias`).data : new Float64Array(o);
    if (b.length !== o) this.fail(node, `${what} bias has ${b.length} values for ${o} channels`);
    let out = node.outputs[0];
    const bnNode = this.maybe(out, 'BatchNormalization');
    if (bnNode) {
      const { scale, shift } = this.bn(bnNode, `${what} BN`);
      if (scale.length !== o) this.fail(bnNode, `${what} BN has ${scale.length} channels after a conv of ${o}`);
      const per = w.length / o;
      for (let c = 0; c < o; c++) { for (let i = 0; i < per; i++) w[c * per + i] *= scale[c]; b[c] = b[c] * scale[c] + shift[c]; }
      out = bnNode.outputs[0];
    }
    return { w, b, shape: [...dims], out, stride: strides[0] };
  }
}


/** Reads an IResNet's weights from an ONNX model; the config comes from the graph (and must equal `expect`). */
export function loadIResNetOnnx(source: string | OnnxModel, expect?: IResNetConfig): IResNetWeights {
  const m = typeof source === 'string' ? openOnnx(source) : source;
  const t: Tracer = new Tracer(m);
  const params: ParamStore = new Map();
  const put = (name: string, v: Float64Array) => params.set(name, v);

  const stemNode = m.nodes.find((n) => n.opType === 'Conv' && m.initializers.get(n.inputs[1])?.dims[1] === 3);
  if (!stemNode) {
    const convWeights = m.nodes.filter((n) => n.opType === 'Conv').map((n) => n.inputs[1]).filter((n) => !m.initializers.has(n));
    if (convWeights.length) throw new OnnxMissingInitializerError(m.path, convWeights, 'IResNet conv weights');
    t.fail('(graph)', 'no Conv over 3 input channels (the stem)');
  }
  const stem = t.conv(stemNode, 'conv1');
  put('conv1.weight', stem.w); put('conv1.bias', stem.b);
  const stemPrelu = t.next(stem.out, ['PRelu'], 'stem PReLU');
  put('prelu.weight', t.init(stemPrelu, 1, 'stem PReLU slope').data);
  let cur = stemPrelu.outputs[0];

  const layers: number[] = [], widths: number[] = [];
  for (;;) {
    const bnNode = t.next(cur, ['BatchNormalization'], 'block bn1 or bn2');
    const after = t.consumers.get(bnNode.outputs[0]) ?? [];
    if (after.length === 1 && after[0].opType !== 'Conv') break; // bn2 → Flatten: the tail
    const c1n = t.next(bnNode.outputs[0], ['Conv'], 'block conv1');
    const c1 = t.conv(c1n, 'block conv1');
    const pr = t.next(c1.out, ['PRelu'], 'block PReLU');
    const c2 = t.conv(t.next(pr.outputs[0], ['Conv'], 'block conv2'), 'block conv2');
    const ds = (t.consumers.get(cur) ?? []).filter((n) => n.opType === 'Conv');
    const down = ds.length === 1 ? t.conv(ds[0], 'downsample') : undefined;
    if (ds.length > 1) t.fail(cur, `${ds.length} shortcut convs`);
    const add = t.next(c2.out, ['Add'], 'residual add');
    const shortcut = down ? down.out : cur;
    if (!add.inputs.includes(shortcut)) t.fail(add, `the residual Add does not read the shortcut "${shortcut}"`);
    if (c2.stride === 2 || layers.length === 0) { layers.push(0); widths.push(c2.shape[0]); }
    const prefix = `layer${layers.length}.${layers[layers.length - 1]++}`;
    const bn1 = t.bn(bnNode, `${prefix}.bn1`);
    put(`${prefix}.bn1.scale`, bn1.scale); put(`${prefix}.bn1.shift`, bn1.shift);
    put(`${prefix}.conv1.weight`, c1.w); put(`${prefix}.conv1.bias`, c1.b);
    put(`${prefix}.prelu.weight`, t.init(pr, 1, `${prefix} PReLU slope`).data);
    put(`${prefix}.conv2.weight`, c2.w); put(`${prefix}.conv2.bias`, c2.b);
    if (down) { put(`${prefix}.downsample.0.weight`, down.w); put(`${prefix}.downsample.0.bias`, down.b); }
    cur = add.outputs[0];
    if (layers.length > 4) t.fail(add, 'more than four stages');
  }
  const bn2Node = t.next(cur, ['BatchNormalization'], 'bn2');
  const bn2 = t.bn(bn2Node, 'bn2');
  put('bn2.scale', bn2.scale); put('bn2.shift', bn2.shift);
  let x = t.next(bn2Node.outputs[0], ['Flatten', 'Reshape'], 'flatten').outputs[0];
  const fcNode = t.next(x, ['Gemm', 'MatMul'], 'fc');
  const { data: fw, dims: fd } = t.init(fcNode, 1, 'fc weight');
  if (fd.length !== 2) t.fail(fcNode, `fc weight has shape [${fd.join(',')}]`);
  const transB = fcNode.opType === 'Gemm' && fcNode.attributes.get('transB') === 1;
  if (fcNode.opType === 'Gemm' && (fcNode.attributes.get('transA') ?? 0) !== 0) t.fail(fcNode, 'Gemm with transA');
  const [out, inF] = transB ? fd : [fd[1], fd[0]];
  const wT = transB ? fw : Float64Array.from({ length: fw.length }, (_, i) => fw[(i % inF) * out + Math.floor(i / inF)]);
  const alpha = (fcNode.attributes.get('alpha') as number | undefined) ?? 1, beta = (fcNode.attributes.get('beta') as number | undefined) ?? 1;
  let bias: Float64Array = new Float64Array(out);
  x = fcNode.outputs[0];
  if (fcNode.opType === 'Gemm' && fcNode.inputs[2]) bias = t.init(fcNode, 2, 'fc bias').data.map((v) => v * beta);
  else if (fcNode.opType === 'MatMul') { const addB = t.next(x, ['Add'], 'fc bias'); bias = t.init(addB, addB.inputs[0] === x ? 1 : 0, 'fc bias').data; x = addB.outputs[0]; }
  if (bias.length !== out) t.fail(fcNode, `fc bias has ${bias.length} values for ${out} outputs`);
  put('fc.weight', wT.map((v) => v * alpha)); put('fc.bias', bias);
  for (let n = t.maybe(x, 'BatchNormalization') ?? (t.consumers.get(x) ?? []).find((c) => PASS_THROUGH.includes(c.opType)); n;) {
    if (n.opType === 'BatchNormalization') { const f = t.bn(n, 'features'); put('features.scale', f.scale); put('features.shift', f.shift); break; }
    x = n.outputs[0];
    n = (t.consumers.get(x) ?? []).find((c) => c.opType === 'BatchNormalization' || PASS_THROUGH.includes(c.opType));
  }
  if (!params.has('features.scale')) { put('features.scale', new Float64Array(out).fill(1)); put('features.shift', new Float64Array(out)); }

  if (layers.length !== 4) t.fail('(graph)', `${layers.length} stages, an IResNet has 4`);
  const config: IResNetConfig = { stem: stem.shape[0], widths: widths as unknown as IResNetConfig['widths'], layers: layers as unknown as IResNetConfig['layers'], embedding: out };
  if (expect && JSON.stringify(expect) !== JSON.stringify(config)) t.fail('(graph)', `config ${JSON.stringify(config)}, expected ${JSON.stringify(expect)}`);
  // Every parameter the graph declares, with its full shape.
  for (const [name, shape] of iresnetParamShapes(config)) {
    const v = params.get(name);
    const size = shape.reduce((a, b) => a * b, 1);
    if (!v || v.length !== size) t.fail(name, `parameter ${name} [${shape.join(',')}] ${v ? `has ${v.length} values` : 'not found'}`);
  }
  if (iresnetBlocks(config).length !== layers.reduce((a, b) => a + b, 0)) t.fail('(graph)', 'block count');
  return { config, params };
}
