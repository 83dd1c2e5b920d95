/** Kiln's public API: the typed DSL, autodiff, optimizers and the float64 reference evaluator. */
export { Tensor } from './dsl/tensor';
export type { Operand } from './dsl/tensor';
export type { ShapeError } from './dsl/shape-types';
export { input, param, full, zeros, ones, scalar, constant, iota, arange, Rng } from './dsl/creation';
export * from './dsl/functional';
export { checkpoint } from './dsl/checkpoint';
export { grad, valueAndGrad, trainableParams } from './autodiff/grad';
export { adamw, sgd } from './autodiff/optim';
import type { GraphSpec as IrGraphSpec, Update as IrUpdate } from './ir/graph';
import type { Tensor as DslTensor } from './dsl/tensor';
/** A program of DSL tensors: named outputs plus parameter updates. */
export type GraphSpec = IrGraphSpec<DslTensor>;
export type Update = IrUpdate<DslTensor>;
export { evaluate } from './reference/evaluate';
export type { ParamStore } from './reference/evaluate';
export { KilnShapeError } from './ir/errors';
export type { DType } from './ir/dtype';
export type { Shape } from './ir/shape';
export { OPS, OP_NAMES } from './ops/registry';
export { compile } from './compile';
export type { CompileOptions } from './compile';
export { Program, CpuProgram } from './program';
export { CudaProgram } from './program-cuda';
export { compileCudaSource, compileCudaEmuSource, lowerProgram } from './compile';
export type { MemoryReport, HostArray, Feed } from './program';
export { formatBytes, parseBytes } from './schedule/memory';
