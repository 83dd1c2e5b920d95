export * from './encoder';
export * from './text';
export * from './vision';
export * from './tokenizer';
export * from './eva';
