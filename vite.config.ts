/**
 * Vite: the browser demo (demo/) and the embedding example (examples/embed/) as one multi-page
 * build into dist/web. `vite` serves both (http://localhost:5173/demo/ and /examples/embed/);
 * mode 'test' adds the page the browser test drives (test/browser/harness/).
 *
 * The browser bundle must not contain Node-only modules: the `no-node-modules` plugin fails the
 * build (and the dev server) when anything on the page's import graph reaches one.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vite';

// src/kernels/wgsl.gen.ts is generated from kernels/*.wgsl.
execFileSync(process.execPath, ['kernels/embed.mjs'], { cwd: import.meta.dirname });

const NODE_ONLY = /^(node:|webgpu$|h5wasm\/node|fs$|path$|child_process$|url$|os$)/;

function noNodeModules(): Plugin {
  return {
    name: 'no-node-modules',
    enforce: 'pre',
    resolveId(id, importer) {
      if (NODE_ONLY.test(id))
        this.error(`Node-only module '${id}' imported by ${importer ?? '?'} on a browser page`);
      return null;
    },
  };
}

export default defineConfig(({ mode }) => {
  const root = import.meta.dirname;
  const input: Record<string, string> = {
    demo: resolve(root, 'demo/index.html'),
    embed: resolve(root, 'examples/embed/index.html'),
  };
  if (mode === 'test') input.harness = resolve(root, 'test/browser/harness/index.html');
  return {
    root,
    publicDir: false,
    base: './',
    plugins: [noNodeModules()],
    build: {
      outDir: resolve(root, 'dist/web'),
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: true,
      chunkSizeWarningLimit: 2048,
      rollupOptions: { input },
    },
  };
});
