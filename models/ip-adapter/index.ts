export * from './config';
export * from './errors';
export * from './proj';
export * from './attention';
export * from './model';
export * from './checkpoint';
export * from './train';
export * from './trainer';
