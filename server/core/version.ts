import { readFileSync } from 'node:fs';

/** The relay's version, from package.json: reported in metrics, the admin API and the dashboard. */
export const RELAY_VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
