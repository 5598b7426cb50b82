/**
 * Dawn's Node binding waits for GPU work (onSubmittedWorkDone, mapAsync) by polling: while any
 * such promise is pending it re-queues a native "tick" with `setImmediate`, which keeps the main
 * thread at 100 % CPU for the whole wait. On a CPU adapter (lavapipe) the GPU work runs on the same
 * cores, so that spin takes a core from the driver's worker threads: on a 2-core machine the
 * driver got about half of each core and the GEMM ran at 16-22 GFLOP/s instead of 26-40.
 *
 * `installDawnPolling('polite')` replaces `globalThis.setImmediate` with a wrapper that lets the
 * binding's tick spin for 0.5 ms at the start of each wait (a wait starts when a tick is queued
 * from outside a running tick), so short waits stay short, and then sleeps 0.5 ms (Atomics.wait)
 * before each later poll, so the main thread leaves the cores to the driver. (Sleeps of 0.2, 0.5
 * and 1 ms, and a 1 ms timer, measured alike.) Every other setImmediate call goes straight to
 * Node's. The binding's tick is recognised as a native function with an empty name (N-API
 * functions; bound functions are named "bound ...").
 */

import { badArg } from '../util/args.js';

export type DawnPolling = 'polite' | 'spin';

/** Counters of the binding's ticks seen by the wrapper (for tests and diagnostics). */
export interface DawnPollingStats {
  /** Ticks passed straight to setImmediate (spin budget, or mode 'spin'). */
  immediate: number;
  /** Ticks run after a 0.5 ms sleep. */
  deferred: number;
}

/** Time a wait may spin before its polls are spaced out, in ms. */
const SPIN_BUDGET_MS = 0.5;
/** Sleep before each later poll, in ms (Atomics.wait: finer than a timer's 1 ms). */
const POLL_SLEEP_MS = 0.5;
const napCell = new Int32Array(new SharedArrayBuffer(4));

type Immediate = typeof globalThis.setImmediate;

let original: Immediate | null = null;
let mode: DawnPolling = 'spin';
/** When the current chain of ticks began (a tick queued from outside a tick starts a chain). */
let chainStart = 0;
let inTick = false;
const stats: DawnPollingStats = { immediate: 0, deferred: 0 };

/** Whether `fn` looks like the binding's tick: a native function without a name. */
export function isBindingTick(fn: unknown): boolean {
  return (
    typeof fn === 'function' &&
    fn.name === '' &&
    Function.prototype.toString.call(fn).includes('[native code]')
  );
}

function wrapper(this: unknown, fn: (...a: unknown[]) => void, ...args: unknown[]) {
  const immediate = original!;
  if (!isBindingTick(fn)) return immediate(fn, ...args);
  // The binding re-queues its tick from inside the running tick while work is pending; a tick
  // queued from anywhere else starts a new wait (and a new spin budget).
  const now = performance.now();
  if (!inTick) chainStart = now;
  const run = () => {
    inTick = true;
    try {
      fn(...args);
    } finally {
      inTick = false;
    }
  };
  if (mode === 'polite' && now - chainStart >= SPIN_BUDGET_MS) {
    stats.deferred++;
    return immediate(() => {
      // The main thread sleeps (the event loop is held for at most this long per poll).
      Atomics.wait(napCell, 0, 0, POLL_SLEEP_MS);
      run();
    });
  }
  stats.immediate++;
  return immediate(run);
}

/**
 * Sets how Dawn's Node binding polls while it waits for the GPU ('polite' by default from
 * createNodeDevice; 'spin' restores the binding's own behaviour). Process-wide; idempotent.
 */
export function installDawnPolling(m: DawnPolling = 'polite'): void {
  if (m !== 'polite' && m !== 'spin') badArg('installDawnPolling', 'mode', "'polite' or 'spin'", m);
  if (original === null) {
    original = globalThis.setImmediate;
    // Keep Node's promisified form and other properties reachable through the wrapper.
    Object.assign(wrapper, original);
    globalThis.setImmediate = wrapper as unknown as Immediate;
  }
  mode = m;
}

/** The current mode ('spin' until installDawnPolling is called). */
export function dawnPolling(): DawnPolling {
  return mode;
}

/** A copy of the tick counters since the process started. */
export function dawnPollingStats(): DawnPollingStats {
  return { ...stats };
}
