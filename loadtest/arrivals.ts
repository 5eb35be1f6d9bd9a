// The open model: when new virtual users arrive, from phases of (possibly ramping) arrival rates.
// Arrivals do not wait for earlier VUs to finish; a slow server means more VUs at once, up to
// --max-vus, and the arrivals beyond that are dropped and counted.

export interface Phase {
  seconds: number;
  /** Arrivals per second at the start of the phase ... */
  from: number;
  /** ... rising (or falling) linearly to this at its end. */
  to: number;
}

/** "30:5" (30 s at 5/s) or "60:1-20" (60 s ramping from 1/s to 20/s); a message when malformed. */
export function parsePhase(text: string): Phase | string {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)s?\s*:\s*([0-9]+(?:\.[0-9]+)?)(?:\s*-\s*([0-9]+(?:\.[0-9]+)?))?\s*$/.exec(text);
  if (!m) return `expected SECONDS:RATE or SECONDS:FROM-TO, got "${text}"`;
  const seconds = Number(m[1]);
  const first = Number(m[2]);
  const phase = m[3] === undefined ? { seconds, from: first, to: first } : { seconds, from: first, to: Number(m[3]) };
  if (!(seconds > 0) || seconds > 86400) return `duration must be > 0 and <= 86400 s, got "${text}"`;
  if (phase.from > 10000 || phase.to > 10000) return `rate must be <= 10000/s, got "${text}"`;
  return phase;
}

export const totalSeconds = (phases: readonly Phase[]) => phases.reduce((s, p) => s + p.seconds, 0);

/** Expected arrivals over all phases (the area under the rate curve). */
export const expectedArrivals = (phases: readonly Phase[]) => phases.reduce((s, p) => s + ((p.from + p.to) / 2) * p.seconds, 0);

/** The rate (arrivals/s) at `t` seconds into the run. */
export function rateAt(phases: readonly Phase[], t: number): number {
  let start = 0;
  for (const p of phases) {
    if (t < start + p.seconds) return p.from + ((p.to - p.from) * (t - start)) / p.seconds;
    start += p.seconds;
  }
  return 0;
}

/**
 * Arrival times in seconds from the start, in order: arrival k comes when the cumulative expected
 * count reaches k + 0.5, so a constant R/s for D s gives exactly round(R × D) arrivals, evenly
 * spaced. Lazy, and finite: it ends with the last phase.
 */
export function* arrivalTimes(phases: readonly Phase[]): Generator<number, void, undefined> {
  let phaseStart = 0;
  let before = 0; // expected arrivals before this phase
  let k = 0;
  for (const p of phases) {
    const a = (p.to - p.from) / (2 * p.seconds); // N(t) = from·t + a·t², t within the phase
    const inPhase = ((p.from + p.to) / 2) * p.seconds;
    while (k + 0.5 <= before + inPhase + 1e-9) {
      const c = k + 0.5 - before;
      // Root of a·t² + from·t − c = 0 in the form that stays accurate when a is ~0 or negative.
      const disc = Math.max(0, p.from * p.from + 4 * a * c);
      const denom = p.from + Math.sqrt(disc);
      const t = denom > 0 ? (2 * c) / denom : p.seconds;
      yield phaseStart + Math.min(p.seconds, Math.max(0, t));
      k += 1;
    }
    phaseStart += p.seconds;
    before += inPhase;
  }
}

export function describePhases(phases: readonly Phase[]): string {
  return phases.map((p) => (p.from === p.to ? `${p.seconds}s at ${p.from}/s` : `${p.seconds}s ramping ${p.from}→${p.to}/s`)).join(', then ');
}
