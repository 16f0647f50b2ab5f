import { networkInterfaces } from 'node:os';

/** The address others reach a listener bound to `bind` at: the bind address, or this machine's first external IPv4. */
export function publicHost(bind: string): string {
  if (bind !== '0.0.0.0' && bind !== '::' && bind !== '') return bind;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
