export * from './vae';
