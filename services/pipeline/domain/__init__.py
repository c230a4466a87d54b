"""The pipeline's aggregates, one module each: pure code, no I/O, the clock injected."""
