"""What both shapes of the benchmark share: records, signed-batch fixtures, the catalog
world, the gateway-side processes, child-process orchestration, probes, options and the
JSON summary. It imports neither shape."""
