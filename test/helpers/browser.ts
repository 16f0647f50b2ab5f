import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import puppeteer, { type Browser as PuppeteerBrowser } from 'puppeteer-core';
import { Builder, Capabilities, type WebDriver } from 'selenium-webdriver';
import { freePort, waitFor } from './ports.ts';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Debian's Chromium, headless, with the flags shared/docs/field-notes.md found necessary here. */
export async function launchChromium(extraArgs: string[] = []): Promise<{ browser: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'relay-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      ...extraArgs,
    ],
  });
  return {
    browser: context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A camera and a microphone for WebRTC publishing tests: Chromium's fake devices, no prompt. */
export const FAKE_MEDIA_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

/** Debian's Firefox ESR (H.264 from libavcodec), headless, driven by puppeteer-core over WebDriver BiDi (see shared/docs/field-notes.md). */
export async function launchFirefox(): Promise<{ browser: PuppeteerBrowser; close(): Promise<void> }> {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr',
    headless: true,
    // Autoplay allowed, as a viewer who clicked would have it; the player's muted fallback is tested in Chromium.
    extraPrefsFirefox: { 'media.autoplay.default': 0 },
  });
  return { browser, close: () => browser.close() };
}

export interface WebKitOptions {
  /** More MiniBrowser options: each WebKitSettings property is one, e.g. `--enable-mediasource=false`. */
  args?: string[];
  /** Environment of the driver and the browser, e.g. WEBKIT_GST_ENABLE_HLS_SUPPORT=1 (its own HLS player). */
  env?: Record<string, string>;
}

/**
 * WebKitGTK's MiniBrowser (the engine of Safari), driven by Debian's WebKitWebDriver with
 * selenium-webdriver, under Xvfb (it has no headless mode; see shared/docs/field-notes.md).
 * It has MediaSource and ManagedMediaSource, as iOS 17.1+ has.
 */
export async function launchWebKit(options: WebKitOptions = {}): Promise<{ driver: WebDriver; close(): Promise<void> }> {
  const port = await freePort();
  const server = spawn('xvfb-run', ['-a', '-s', '-screen 0 1280x800x24', '/usr/bin/WebKitWebDriver', `--port=${port}`, '--host=127.0.0.1'], {
    env: { ...process.env, ...options.env },
    stdio: process.env.WEBKIT_LOG ? ['ignore', openSync(process.env.WEBKIT_LOG, 'a'), openSync(process.env.WEBKIT_LOG, 'a')] : 'ignore',
    detached: true, // its own process group: Xvfb, the driver and MiniBrowser go together
  });
  const stop = () => {
    try {
      process.kill(-server.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  };
  try {
    await waitFor(
      'WebKitWebDriver',
      () =>
        fetch(`http://127.0.0.1:${port}/status`).then(
          (r) => r.ok,
          () => false,
        ),
      20_000,
      100,
    );
    const capabilities = new Capabilities({
      browserName: 'MiniBrowser',
      'webkitgtk:browserOptions': {
        binary: '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser',
        args: ['--automation', '--autoplay-policy=allow', ...(options.args ?? [])],
      },
      // Navigation returns once the document is parsed; tests wait for what they need by polling.
      pageLoadStrategy: 'eager',
      timeouts: { script: 10_000, pageLoad: 20_000, implicit: 0 },
    });
    const driver = await new Builder().usingServer(`http://127.0.0.1:${port}`).withCapabilities(capabilities).build();
    return {
      driver,
      async close() {
        await driver.quit().catch(() => {});
        stop();
      },
    };
  } catch (err) {
    stop();
    throw err;
  }
}

/**
 * Waits until the watch page's player plays over WebRTC or has given up on it (its `fallback` says why:
 * asked for WebRTC, it shows the WebSocket's picture first, so "playing" alone is not the answer).
 * Returns what `look` saw then.
 */
export function webRtcOrFallback<T extends { protocol?: string; fallback?: string }>(look: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  return waitFor(
    'playing over WebRTC (or a fallback)',
    async () => {
      const seen = await look();
      return seen.protocol === 'webrtc' || seen.fallback !== undefined ? seen : undefined;
    },
    timeoutMs,
    100,
  );
}
