export * from './euler';
export * from './dpmpp';
export * from './sampler';
export * from './brownian';
