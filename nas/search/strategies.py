"""The strategy names `nas search --strategy` takes (implemented by NNI, see nni_adapter)."""
STRATEGIES = ("random", "grid", "evolution", "tpe", "rl")
