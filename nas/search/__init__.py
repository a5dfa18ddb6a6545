"""Search: a strategy proposes candidates, the proxy scores them, trials.jsonl keeps them."""
from .runner import SearchConfig, run_search
from .strategies import STRATEGIES

__all__ = ["STRATEGIES", "SearchConfig", "run_search"]
