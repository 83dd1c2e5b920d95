export * from './config';
export * from './unet';
