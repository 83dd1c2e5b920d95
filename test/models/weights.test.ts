import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readSafetensors, writeSafetensors } from '../../models/io/safetensors';
import { UNet2DConditionModel, tinyUnetConfig } from '../../models/unet/index';
import { Linear, ParamRegistry } from '../../models/nn/index';
import { WeightLoadError, loadSafetensorsInto, paramShapes, saveParams } from '../../models/weights';
import { quickStore } from './ref';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-w-'));

describe('weights by key', () => {
  test('tiny UNet params: save, load back exactly (F64 and F32)', () => {
    const m = new UNet2DConditionModel(tinyUnetConfig);
    const store = quickStore(m.registry.params, 3);
    const dir = tmp();
    saveParams(path.join(dir, 'u64.safetensors'), store, m, { dtype: 'F64' });
    saveParams(path.join(dir, 'u32.safetensors'), store, m);
    const back64 = new Map<string, Float64Array>(), back32 = new Map<string, Float64Array>();
    const rep = loadSafetensorsInto(back64, path.join(dir, 'u64.safetensors'), m);
    loadSafetensorsInto(back32, path.join(dir, 'u32.safetensors'), m);
    expect(rep.loaded.length).toBe(m.registry.params.size);
    expect(rep.missing).toEqual([]);
    const bad: string[] = [];   // a plain loop: jest's toEqual on 2.5 M typed-array elements takes a minute
    for (const [k, v] of store) {
      const a = back64.get(k)!, b = back32.get(k)!, f = Float32Array.from(v);
      if (a.length !== v.length || v.some((x, i) => a[i] !== x || b[i] !== f[i])) bad.push(k);
    }
    expect(bad).toEqual([]);
    const file = readSafetensors(path.join(dir, 'u32.safetensors')).tensors;
    expect(file.get('down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight')!.shape).toEqual([64, 32]);
    expect([...file.keys()].sort()).toEqual([...paramShapes(m).keys()].sort());
    fs.rmSync(dir, { recursive: true });
  });

  test('missing, unexpected and mismatched keys are reported by name; strict throws', () => {
    const reg = new ParamRegistry();
    new Linear(reg.scope('a'), 3, 2);
    new Linear(reg.scope('b'), 3, 2, { bias: false });
    const dir = tmp(), file = path.join(dir, 'w.safetensors');
    writeSafetensors(file, {
      'unet.a.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      'unet.b.weight': { dtype: 'F16', shape: [3, 2], data: new Float32Array(6) },
      'unet.c.weight': { dtype: 'F32', shape: [1], data: new Float32Array(1) },
    });
    const store = new Map<string, Float64Array>();
    const rep = loadSafetensorsInto(store, file, reg, { strict: false, stripPrefix: 'unet.' });
    expect(rep.loaded).toEqual(['a.weight']);
    expect(rep.missing).toEqual(['a.bias']);
    expect(rep.unexpected).toEqual(['unet.c.weight']);
    expect(rep.mismatched).toEqual([{ key: 'b.weight', expected: [2, 3], found: [3, 2] }]);
    expect(Array.from(store.get('a.weight')!)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(store.has('b.weight')).toBe(false);
    expect(() => loadSafetensorsInto(new Map(), file, reg, { stripPrefix: 'unet.' })).toThrow(WeightLoadError);
    expect(() => loadSafetensorsInto(new Map(), file, reg, { stripPrefix: 'unet.' })).toThrow(/missing 1: a\.bias; unexpected 1: unet\.c\.weight; shape mismatches 1: b\.weight expected \[2,3\] found \[3,2\]/);
    fs.rmSync(dir, { recursive: true });
  });
});
