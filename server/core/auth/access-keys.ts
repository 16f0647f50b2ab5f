import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { z } from 'zod';
import { signingSecret, streamEntry, type RelayConfig, type StreamEntry } from '../config/schema.ts';
import { RelayError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { isStreamName } from '../media/stream-name.ts';
import { weakSecret } from './production-check.ts';
import { parsePublishKey, verifyPlaybackToken, verifySigned } from './signatures.ts';

/** auth.keysFile: what it may hold. Every part is optional. */
export const keysFileSchema = z
  .object({
    streams: z.array(streamEntry).default([]),
    publishSecrets: z.array(signingSecret).default([]),
    playbackSecrets: z.array(signingSecret).default([]),
  })
  .strict();

export type KeysFile = z.infer<typeof keysFileSchema>;

const digest = (key: string) => createHash('sha256').update(key).digest();

/** How often the keys file is looked at (a stat) for changes. */
const WATCH_INTERVAL_MS = 1000;

/** A stream's entry without its key: what the rest of the relay may read. */
export type StreamSettings = Omit<StreamEntry, 'key'>;

interface KeySet {
  entries: Map<string, StreamSettings>;
  digests: { name: string; digest: Buffer }[];
  publishSecrets: string[];
  playbackSecrets: string[];
}

/**
 * Who may publish and who may watch: static stream keys (config and keys file),
 * signed publish keys and signed playback tokens. Static keys are held as digests
 * and compared in constant time; nothing here hands a key back out. The keys file
 * is re-read on change (or `reload()`, on SIGHUP): a bad file is logged and the
 * keys in use stay.
 */
export class AccessKeys {
  private set: KeySet;
  private readonly configured: { settings: StreamSettings; digest: Buffer }[];
  private readonly auth: RelayConfig['auth'];

  constructor(
    config: Pick<RelayConfig, 'streams' | 'auth'>,
    private readonly log: Logger,
    private readonly options: { production?: boolean; now?: () => number } = {},
  ) {
    this.auth = config.auth;
    this.configured = config.streams.map(({ key, ...settings }) => ({ settings, digest: digest(key) }));
    this.set = this.build(this.readFile());
  }

  /** The keys file's contents, validated; CONFIG_INVALID when it cannot be used. */
  private readFile(): KeysFile {
    const file = this.auth.keysFile;
    if (!file) return keysFileSchema.parse({});
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new RelayError('CONFIG_INVALID', `auth.keysFile ${file}: ${(err as Error).message}`);
    }
    const parsed = keysFileSchema.safeParse(raw);
    if (!parsed.success) {
      throw new RelayError(
        'CONFIG_INVALID',
        `auth.keysFile ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      );
    }
    if (this.options.production) {
      const weak = [
        ...parsed.data.streams.map((s) => [`the key of stream "${s.name}"`, weakSecret(s.key)]),
        ...parsed.data.publishSecrets.map((s, i) => [`publish secret #${i + 1}`, weakSecret(s)]),
        ...parsed.data.playbackSecrets.map((s, i) => [`playback secret #${i + 1}`, weakSecret(s)]),
      ].filter(([, why]) => why);
      if (weak.length) throw new RelayError('CONFIG_INSECURE', `auth.keysFile ${file}: ${weak.map(([what, why]) => `${what} ${why}`).join('; ')}`);
    }
    return parsed.data;
  }

  private build(file: KeysFile): KeySet {
    const byName = new Map<string, { settings: StreamSettings; digest: Buffer }>();
    for (const c of this.configured) byName.set(c.settings.name, c);
    // The file's entry wins over the config's: that is how a configured stream's key rotates.
    for (const { key, ...settings } of file.streams) byName.set(settings.name, { settings, digest: digest(key) });
    return {
      entries: new Map([...byName].map(([name, c]) => [name, c.settings])),
      digests: [...byName].map(([name, c]) => ({ name, digest: c.digest })),
      publishSecrets: [...this.auth.publishSecrets, ...file.publishSecrets],
      playbackSecrets: [...this.auth.playbackSecrets, ...file.playbackSecrets],
    };
  }

  /** The secret that signs new keys or tokens (`relay sign`): the first configured, then the file's. */
  signingSecret(purpose: 'publish' | 'play'): string | undefined {
    return (purpose === 'publish' ? this.set.publishSecrets : this.set.playbackSecrets)[0];
  }

  /** Re-reads the keys file; false (logged, old keys kept) when it cannot be used. */
  reload(): boolean {
    try {
      const next = this.build(this.readFile());
      this.set = next;
      this.log.info({ streams: next.entries.size, publishSecrets: next.publishSecrets.length, playbackSecrets: next.playbackSecrets.length }, 'keys reloaded');
      return true;
    } catch (err) {
      const e = err instanceof RelayError ? err : new RelayError('CONFIG_INVALID', String(err));
      this.log.error({ code: e.code, err: e.message }, 'keys file not reloaded; the keys in use stay');
      return false;
    }
  }

  /** Re-reads the keys file whenever it changes; returns the stop. */
  watch(): () => void {
    const file = this.auth.keysFile;
    if (!file) return () => {};
    const listener = (now: { mtimeMs: number; size: number }, before: { mtimeMs: number; size: number }) => {
      if (now.mtimeMs !== before.mtimeMs || now.size !== before.size) this.reload();
    };
    watchFile(file, { interval: WATCH_INTERVAL_MS, persistent: false }, listener);
    return () => unwatchFile(file, listener);
  }

  /**
   * The stream a publish key opens: a static key's stream, or the stream a signed
   * key names. STREAM_KEY_INVALID or STREAM_KEY_EXPIRED otherwise.
   */
  streamForKey(key: string): string {
    const d = digest(key);
    let found: string | undefined;
    for (const e of this.set.digests) if (timingSafeEqual(e.digest, d)) found = e.name;
    if (found) return found;
    const signed = this.set.publishSecrets.length > 0 ? parsePublishKey(key) : undefined;
    if (signed) {
      const verdict = verifySigned(this.set.publishSecrets, 'publish', signed.stream, signed.expiresAt, signed.sig, this.now());
      if (verdict === 'valid') return signed.stream;
      if (verdict === 'expired') throw new RelayError('STREAM_KEY_EXPIRED', `expired ${new Date(signed.expiresAt * 1000).toISOString()}`);
    }
    throw new RelayError('STREAM_KEY_INVALID');
  }

  /** A stream viewers may ask for: a configured one, or any valid name when signed publish keys can open it. */
  isKnownStream(name: string): boolean {
    return this.set.entries.has(name) || (this.set.publishSecrets.length > 0 && isStreamName(name));
  }

  /** The configured entry of a stream (its transcode choice), if any. */
  entry(name: string): StreamSettings | undefined {
    return this.set.entries.get(name);
  }

  /** Configured stream names (signed streams are known once live). */
  get names(): string[] {
    return [...this.set.entries.keys()];
  }

  get playbackTokensRequired(): boolean {
    return this.set.playbackSecrets.length > 0;
  }

  /** Throws PLAYBACK_TOKEN_REQUIRED, _INVALID or _EXPIRED unless `token` lets its holder watch `stream` (or playback is open). */
  checkPlayback(stream: string, token: string | undefined): void {
    if (!this.playbackTokensRequired) return;
    if (!token) throw new RelayError('PLAYBACK_TOKEN_REQUIRED');
    const verdict = verifyPlaybackToken(this.set.playbackSecrets, stream, token, this.now());
    if (verdict === 'invalid') throw new RelayError('PLAYBACK_TOKEN_INVALID');
    if (verdict === 'expired') throw new RelayError('PLAYBACK_TOKEN_EXPIRED');
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}
