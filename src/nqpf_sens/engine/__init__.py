"""The engine: data -> impute -> transform -> normalise -> aggregate -> rank/tier, for one scenario
or a batch of many at once. Pure array functions and compiled kernels; it knows nothing of the
layers above it (uncertainty, report, config) nor of any particular index."""
