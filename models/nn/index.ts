export * from './module';
export * from './layers';
export * from './attention';
export * from './resnet';
export * from './embeddings';
