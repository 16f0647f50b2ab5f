/**
 * Keyframe requests, at most one per `minMs`, and none lost: a request inside the window is sent
 * when the window ends. Dropping it instead left a viewer who joined just after another one's
 * request without a picture until the source's next keyframe, and a WebRTC publisher (a browser,
 * OBS) may make none unless asked.
 */
export class KeyframeThrottle {
  private last = -Infinity;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly minMs: number,
    private readonly ask: () => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  request(): void {
    if (this.timer !== undefined) return; // one is due already
    const wait = this.last + this.minMs - this.now();
    if (wait <= 0) return this.send();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send();
    }, wait);
    this.timer.unref?.();
  }

  /** Drops a request still due. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private send(): void {
    this.last = this.now();
    this.ask();
  }
}
