// The V8 flags the server runs with. The CLI's shebang and `npm start` pass them; tools that start
// the server themselves (benchmarks, load tests) spawn it with NODE_FLAGS, so they measure what
// production runs. A young generation of 2 x 4 MB instead of Node's 2 x 16 MB keeps about 25 MB
// less resident at the same throughput; an old generation capped at 160 MB (the live heap is
// about 30 MB) makes V8 collect before it grows: under the benchmark's load, resident memory
// stayed at 110-120 MB instead of climbing past 200 MB (docs/performance.md). --liftoff-only
// touches WebAssembly only, the embedded PGlite: its baseline code, without optimised recompiles
// of hot functions, keeps 40-50 MB less resident (docs/decisions.md).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--max-old-space-size=160', '--liftoff-only'];
