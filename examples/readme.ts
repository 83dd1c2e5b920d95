// The README's example: a two-layer MLP, its gradient as a graph, one AdamW step, checked in float64.
import { input, param, linear, softmax, grad, adamw, evaluate, trainableParams, type ParamStore } from '../compiler/index';

const x = input('x', [4, 3]);                                   // a batch of 4 rows, 3 features
const w1 = param('w1', [8, 3], { init: { kind: 'normal', std: 0.5, seed: 1 } });
const w2 = param('w2', [2, 8], { init: { kind: 'normal', std: 0.5, seed: 2 } });
const probs = softmax(linear(linear(x, w1).silu(), w2));        // [4, 2]
const loss = probs.narrow(1, 0, 1).log().neg().mean();          // push class 0 up

const params = trainableParams(loss);                           // w1, w2
const grads = grad(loss, params);                               // gradients are graph nodes too
const step = { outputs: { loss }, updates: adamw(params, grads, { lr: 0.05 }) };

const store: ParamStore = new Map();                            // parameter values by name
const feeds = { x: [1, 2, 3, -1, 0, 1, 0.5, 0.5, 0.5, 2, -2, 1] };
for (let i = 0; i < 5; i++) console.log(`step ${i}: loss ${evaluate(step, feeds, store).outputs.loss.data[0].toFixed(6)}`);

// A shape mistake is caught when the graph is built, naming the op, the shapes and this line:
try { x.matmul(param('bad', [4, 4]) as never); } catch (e) { console.log((e as Error).message); }
