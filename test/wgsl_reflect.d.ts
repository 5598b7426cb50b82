// The package's ESM build has no types of its own path; reuse the package types.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
