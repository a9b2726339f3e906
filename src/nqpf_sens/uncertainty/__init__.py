"""The uncertainty layer: uncertain factors, designs in the unit hypercube, the parallel study that
evaluates them through the engine, and the statistics and Sobol indices of its outputs."""
