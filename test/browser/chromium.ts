/**
 * Debian's Chromium (/usr/bin/chromium, or $CHROMIUM_PATH) driven by playwright-core, headless
 * with WebGPU, offline-friendly flags and a fresh profile directory. Never downloads a browser.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  // Presenting a WebGPU canvas needs the compositor on SwiftShader too: without a GL implementation
  // the device is lost at the first present ("A valid external Instance reference no longer
  // exists"), and without SwiftShader Vulkan for compositing the canvas shows blank in
  // screenshots. Compute-only pages work either way.
  '--use-angle=swiftshader',
  '--use-vulkan=swiftshader',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-default-apps',
  '--disable-extensions',
];

export interface Browser {
  context: BrowserContext;
  /** A new page whose console errors, page errors and failed requests are collected in `errors`. */
  page(): Promise<Page>;
  /** Everything logged as an error by any page so far ('console.error: ...', 'pageerror: ...'). */
  errors: string[];
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH))
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: run 'bash scripts/setup-chromium.sh' (Debian package chromium) ` +
        'or set CHROMIUM_PATH',
    );
  const profile = mkdtempSync(join(tmpdir(), 'samlst-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 900 },
    deviceScaleFactor: 1,
  });
  const errors: string[] = [];
  const watch = (p: Page) => {
    p.on('console', (m: ConsoleMessage) => {
      if (m.type() === 'error') errors.push(`console.error: ${m.text()} (${p.url()})`);
    });
    p.on('pageerror', (e) => errors.push(`pageerror: ${e.message} (${p.url()})`));
  };
  context.on('page', watch);
  return {
    context,
    errors,
    page: () => context.newPage(),
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
