/**
 * Runs face-api 1.7.15 itself (dist/face-api.node-wasm.js) as the oracle for Kiln's face networks, in a child
 * process so its tfjs engine stays out of jest's module registry. face-api's node build wants the full
 * `@tensorflow/tfjs`; only tfjs-core (+ tfjs-backend-cpu, tfjs-backend-wasm) is installed, so that require is
 * redirected to tfjs-core, and the chained tensor methods the full package would register (x.as3D(), x.div())
 * are added here. Models load from disk with face-api's own loadFromDisk. Backend: tfjs-backend-wasm (float32)
 * by default, `"backend":"cpu"` in the request for tfjs-backend-cpu (also float32, ~15× slower: 5 minutes for
 * the six demo photos). `loadFaceApi` is exported for bench/face/.
 *
 * usage: node faceapi-oracle.cjs <request.json>   → JSON on stdout
 *   {op:'descriptor', image:{path,width,height}}         raw float32 HWC RGB, already 150×150 (or any size)
 *   {op:'pipeline',   image:{path,width,height}}         detectAllFaces(ssd).withFaceLandmarks().withFaceDescriptors()
 *   {op:'pipeline',   images:[{path,width,height}, …]}   the same for several images (models load once) → [{faces}, …]
 *   {op:'landmarks',  image:{path,width,height}}         faceLandmark68Net.detectLandmarks on a face crop
 */
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

const root = path.resolve(__dirname, '../../..');
let loaded;
/** face-api on tfjs-core with the given backend ('wasm': tfjs-backend-wasm 4.22, SIMD, single-threaded in Node;
 * 'cpu': tfjs-backend-cpu, plain JS). The first call fixes the module wiring; the backend can be switched. */
async function loadFaceApi(backend = 'wasm') {
  if (!loaded) {
    const load = Module._load;
    Module._load = function (request, ...rest) {
      if (request === '@tensorflow/tfjs') request = '@tensorflow/tfjs-core';
      return load.call(this, request, ...rest);
    };
    const faceapi = require(path.join(root, 'node_modules/@vladmandic/face-api/dist/face-api.node-wasm.js'));
    Module._load = load;
    require('@tensorflow/tfjs-backend-cpu');
    require('@tensorflow/tfjs-backend-wasm').setWasmPaths(path.join(root, 'node_modules/@tensorflow/tfjs-backend-wasm/dist') + path.sep);
    const tf = faceapi.tf;
    const proto = tf.Tensor.prototype;
    for (const [k, f] of Object.entries(tf)) {
      if (typeof f === 'function' && /^[a-z]/.test(k) && !(k in proto)) proto[k] = function (...a) { return f(this, ...a); };
    }
    for (const k of ['as1D', 'as2D', 'as3D', 'as4D', 'as5D']) {
      proto[k] = function (...s) { return tf.reshape(this, k === 'as1D' ? [this.size] : s); };
    }
    loaded = faceapi;
  }
  if (!(await loaded.tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} failed to initialise`);
  await loaded.tf.ready();
  return loaded;
}
const modelDir = path.join(root, 'node_modules/@vladmandic/face-api/model');

const readImage = (tf, { path: p, width, height }) => {
  const buf = fs.readFileSync(p);
  return tf.tensor3d(new Float32Array(buf.buffer, buf.byteOffset, width * height * 3), [height, width, 3], 'float32');
};
const pt = (q) => [q.x, q.y];
const box = (b) => [b.x, b.y, b.width, b.height];

async function main() {
  const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const faceapi = await loadFaceApi(req.backend ?? 'wasm');
  const tf = faceapi.tf;
  const dir = modelDir;
  const img = req.image && readImage(tf, req.image);
  let out;
  if (req.op === 'descriptor') {
    await faceapi.nets.faceRecognitionNet.loadFromDisk(dir);
    out = { descriptor: Array.from(await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(img)) };
  } else if (req.op === 'landmarks') {
    await faceapi.nets.faceLandmark68Net.loadFromDisk(dir);
    const lm = await faceapi.nets.faceLandmark68Net.detectLandmarks(img);
    out = { landmarks: lm.positions.map(pt) };
  } else if (req.op === 'pipeline') {
    await Promise.all([faceapi.nets.ssdMobilenetv1, faceapi.nets.faceLandmark68Net, faceapi.nets.faceRecognitionNet].map((n) => n.loadFromDisk(dir)));
    const pipeline = async (im) => {
      const res = await faceapi.detectAllFaces(im, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 })).withFaceLandmarks().withFaceDescriptors();
      return {
        faces: res.map((r) => ({
          score: r.detection.score,
          box: box(r.detection.box),
          landmarks: r.landmarks.positions.map(pt),
          alignedRect: box(r.landmarks.align(null, { useDlibAlignment: true })),
          descriptor: Array.from(r.descriptor),
        })),
      };
    };
    if (req.images) {
      out = [];
      for (const spec of req.images) out.push(await pipeline(readImage(tf, spec)));
    } else out = await pipeline(img);
  } else throw new Error(`unknown op ${req.op}`);
  process.stdout.write(JSON.stringify(out));
}
if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
module.exports = { loadFaceApi, modelDir };
