export interface ViewerQueueLimits {
  /** Queued bytes above which a viewer skips to the next keyframe. */
  skipBytes: number;
  /** Queued bytes above which a viewer is disconnected at once. */
  maxBytes: number;
  /** A viewer that keeps skipping this long is disconnected. */
  maxLagMs: number;
}

/** `fall-behind` is the first skip of an episode (counted once); `skip` the ones after it. */
export type Decision = 'send' | 'skip' | 'fall-behind' | 'disconnect';

/** Per-viewer state of the policy; lives on the viewer, no allocation per fragment. */
export interface ViewerQueueState {
  skipping: boolean;
  skippingSince: number;
  /** Fragments skipped, and times the viewer fell behind (episodes). */
  skippedFragments: number;
  fellBehind: number;
}

export function newQueueState(): ViewerQueueState {
  return { skipping: false, skippingSince: 0, skippedFragments: 0, fellBehind: 0 };
}

/**
 * The bounded queue policy for one viewer, given the bytes already queued on
 * its socket. A viewer that falls behind skips everything up to the next
 * keyframe (a decoder cannot start anywhere else); one that stays behind, or
 * whose queue grows past the hard cap, is disconnected. Pure.
 */
export function decide(limits: ViewerQueueLimits, state: ViewerQueueState, queuedBytes: number, keyframe: boolean, now: number): Decision {
  if (queuedBytes > limits.maxBytes) return 'disconnect';
  if (state.skipping) {
    if (keyframe && queuedBytes <= limits.skipBytes / 2) {
      state.skipping = false;
      return 'send';
    }
    if (now - state.skippingSince > limits.maxLagMs) return 'disconnect';
    state.skippedFragments++;
    return 'skip';
  }
  if (queuedBytes > limits.skipBytes) {
    state.skipping = true;
    state.skippingSince = now;
    state.fellBehind++;
    state.skippedFragments++;
    return 'fall-behind';
  }
  return 'send';
}
