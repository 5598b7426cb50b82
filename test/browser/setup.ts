/**
 * Shared set-up of the browser tests: a Vite build of the pages (mode 'test': demo, embed example,
 * test harness) into a temporary folder, a static server for it (fixtures under /test/fixtures/),
 * and Debian's Chromium with WebGPU. Each test file starts its own (about 2-4 s).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fixturesDir } from '../helpers.js';
import { launchChromium, type Browser } from './chromium.js';
import { serveStatic, type StaticServer } from './server.js';

export const repoRoot = resolve(fixturesDir, '..', '..');

/** Generous limits: SwiftShader runs the tiny model's first (pipeline-compiling) pass in seconds. */
export const SETUP_TIMEOUT = 120_000;
export const BROWSER_TEST_TIMEOUT = 240_000;

export interface WebEnv {
  server: StaticServer;
  browser: Browser;
  close(): Promise<void>;
}

export async function startWebEnv(): Promise<WebEnv> {
  const outDir = mkdtempSync(join(tmpdir(), 'samlst-web-'));
  try {
    execFileSync(
      process.execPath,
      [
        join(repoRoot, 'node_modules/vite/bin/vite.js'),
        'build',
        '--mode',
        'test',
        '--outDir',
        outDir,
        '--logLevel',
        'warn',
      ],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (e) {
    rmSync(outDir, { recursive: true, force: true });
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`vite build of the browser pages failed: ${err.stderr?.toString() || err.message}`);
  }
  const server = await serveStatic({ '/test/fixtures/': fixturesDir, '/': outDir });
  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (e) {
    await server.close();
    rmSync(outDir, { recursive: true, force: true });
    throw e;
  }
  return {
    server,
    browser,
    async close() {
      await browser.close();
      await server.close();
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}
