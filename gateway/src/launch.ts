/**
 * Node flags every shipped launcher passes: the `bin/` shebang, `npm start`, the Dockerfile's
 * ENTRYPOINT and the systemd unit (the benchmark starts the gateway with them too).
 *
 * `--max-semi-space-size=32`: a 32 MB young generation (V8's default here is 16 MB) halves the
 * scavenges per reading. Under load a scavenge's cost is what survives it (readings waiting for their
 * commit and for the sink), not the space's size, so young-generation GC time halves too: QoS 1
 * batches went from ~86,000 to ~105,000 readings/s on the 2-core benchmark machine, for ~35 MB
 * more RSS at 1,000 machines (bench/README "Young generation and batch size"). V8 sizes the young
 * generation when the isolate is created, so unlike the heap growth (cli.ts) the gateway cannot set
 * it itself. test/gateway/launchers.test.ts checks that every launcher carries these flags.
 */
export const LAUNCH_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
