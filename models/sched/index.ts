export * from './euler';
