"""nas: budget-aware neural architecture search for PyTorch."""
__version__ = "0.1.0"
