"""Development tools: the Lambda emulator, the benchmark, chaos and race experiments, the demo
and the local dev stack. Nothing here ships in the production image or runs in production."""
