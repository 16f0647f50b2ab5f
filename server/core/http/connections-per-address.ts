import type { Socket } from 'node:net';

/**
 * Open connections per remote address, for one listener: a client that opens
 * more than `max` at once gets the extra ones refused, so one host cannot take
 * every socket the process has. 0: no limit. IPv4-mapped IPv6 addresses count as
 * their IPv4 address.
 */
export class ConnectionsPerAddress {
  private readonly open = new Map<string, number>();
  refused = 0;

  constructor(private readonly max: number) {}

  /** Counts `socket` in (until it closes), or returns false when its address is at the limit. */
  admit(socket: Socket): boolean {
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const count = this.open.get(address) ?? 0;
    if (this.max > 0 && count >= this.max) {
      this.refused++;
      return false;
    }
    this.open.set(address, count + 1);
    socket.once('close', () => {
      const left = (this.open.get(address) ?? 1) - 1;
      if (left > 0) this.open.set(address, left);
      else this.open.delete(address);
    });
    return true;
  }

  /** Addresses with at least one connection open (bounded by the listener's own connection limit). */
  get addresses(): number {
    return this.open.size;
  }
}
