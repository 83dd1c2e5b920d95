/**
 * Runs face-api 1.7.15 itself (dist/face-api.node-wasm.js) as the oracle for Kiln's face networks, in a child
 * process so its tfjs engine stays out of jest's module registry. face-api's node build wants the full
 * `@tensorflow/tfjs` and tfjs-backend-wasm; only tfjs-core and tfjs-backend-cpu are installed, so the two
 * requires are redirected, and the chained tensor methods the full package would register (x.as3D(), x.div())
 * are added here. Models load from disk with face-api's own loadFromDisk.
 *
 * usage: node faceapi-oracle.cjs <request.json>   → JSON on stdout
 *   {op:'descriptor', image:{path,width,height}}         raw float32 HWC RGB, already 150×150 (or any size)
 *   {op:'pipeline',   image:{path,width,height}}         detectAllFaces(ssd).withFaceLandmarks().withFaceDescriptors()
 *   {op:'landmarks',  image:{path,width,height}}         faceLandmark68Net.detectLandmarks on a face crop
 */
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === '@tensorflow/tfjs') request = '@tensorflow/tfjs-core';
  if (request === '@tensorflow/tfjs-backend-wasm') request = '@tensorflow/tfjs-backend-cpu';
  return load.call(this, request, ...rest);
};
const root = path.resolve(__dirname, '../../..');
const faceapi = require(path.join(root, 'node_modules/@vladmandic/face-api/dist/face-api.node-wasm.js'));
const tf = faceapi.tf;
const proto = tf.Tensor.prototype;
for (const [k, f] of Object.entries(tf)) {
  if (typeof f === 'function' && /^[a-z]/.test(k) && !(k in proto)) proto[k] = function (...a) { return f(this, ...a); };
}
for (const k of ['as1D', 'as2D', 'as3D', 'as4D', 'as5D']) {
  proto[k] = function (...s) { return tf.reshape(this, k === 'as1D' ? [this.size] : s); };
}

const readImage = ({ path: p, width, height }) => {
  const buf = fs.readFileSync(p);
  return tf.tensor3d(new Float32Array(buf.buffer, buf.byteOffset, width * height * 3), [height, width, 3], 'float32');
};
const pt = (q) => [q.x, q.y];
const box = (b) => [b.x, b.y, b.width, b.height];

async function main() {
  const req = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  await tf.setBackend('cpu');
  await tf.ready();
  const dir = path.join(root, 'node_modules/@vladmandic/face-api/model');
  const img = readImage(req.image);
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
    const res = await faceapi.detectAllFaces(img, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 })).withFaceLandmarks().withFaceDescriptors();
    out = {
      faces: res.map((r) => ({
        score: r.detection.score,
        box: box(r.detection.box),
        landmarks: r.landmarks.positions.map(pt),
        alignedRect: box(r.landmarks.align(null, { useDlibAlignment: true })),
        descriptor: Array.from(r.descriptor),
      })),
    };
  } else throw new Error(`unknown op ${req.op}`);
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
