// Types for abr.js (plain JS: the browser loads it as it is).
export interface AbrOptions {
  behindMs: number;
  healthyMs: number;
  downAfterMs: number;
  slowArrival: number;
  arrivalWindowMs: number;
  slowAfterMs: number;
  holdMs: number;
  maxHoldMs: number;
  failedTryMs: number;
  safety: number;
  windowMs: number;
  startKbps: number;
}
export interface AbrRendition {
  name: string;
  /** Video + audio bitrate, kbit/s. */
  kbps?: number;
}
export interface AbrSample {
  now: number;
  bytes: number;
  latencyMs?: number;
  stalled: boolean;
  switching: boolean;
  /** The newest media time received (s); undefined when nothing is live. */
  receivedS?: number;
}
export const ABR_DEFAULTS: AbrOptions;
export function autoRenditions(renditions: AbrRendition[]): AbrRendition[];
export class AbrController {
  constructor(options?: Partial<AbrOptions>);
  hold: number;
  log: [number, string, string, string][];
  rateKbps(spanMs?: number): number | undefined;
  arrivalRatio(): number | undefined;
  lastSwitch: { at: number; up: boolean };
  initial(renditions: AbrRendition[], knownKbps?: number): string | undefined;
  abandoned(now: number, current: string): void;
  decide(sample: AbrSample, renditions: AbrRendition[], current: string): string | undefined;
}
