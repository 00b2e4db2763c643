"""What one `dpodiff ui` server holds for every visitor: Gradio (an optional extra) and the models all runs share."""

import os
import threading
from dataclasses import dataclass, field

from dpodiff.config import RunConfig
from dpodiff.errors import UsageError

DEFAULT_MAX_BUDGET, DEFAULT_MAX_SEEDS = 200, 8  # per run on a shared server: ui --max-budget / --max-seeds


def require_gradio():
    """The gradio module, or a UsageError saying how to install it (it is the optional extra `ui`)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline machine
    try:
        import gradio
    except ImportError:
        raise UsageError("The UI needs Gradio, which is not installed: pip install 'dpodiff[ui]'.") from None
    return gradio


@dataclass
class Models:
    """What a server loads once and every run shares."""

    backend: object
    scorer: object  # the default scorer
    name: str
    shapes_world: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # one search on the model at a time
    others: list = field(default_factory=list)  # more scorers the server was started with (`ui --scorer` repeated)
    max_budget: int = DEFAULT_MAX_BUDGET  # what one visitor's run may take of the shared model
    max_seeds: int = DEFAULT_MAX_SEEDS

    @property
    def scorers(self) -> dict:
        """The scorers a visitor may choose, by name, the default first: only those the server was started with."""
        return {s.name: s for s in [self.scorer, *self.others]}

    def scorer_for(self, name: str | None):
        """The scorer of that name (empty: the default); a visitor never makes the server load anything."""
        name = (name or "").strip()
        if name and name not in self.scorers:
            raise UsageError(f"{name!r} is not one of this server's scorers ({', '.join(self.scorers)}); "
                             "whoever starts the server adds scorers with `dpodiff ui --scorer` (repeatable).")
        return self.scorers[name] if name else self.scorer

    def check_bounds(self, config: RunConfig) -> None:
        """One visitor may not hold the shared model for longer than the server allows."""
        if config.budget > self.max_budget:
            raise UsageError(f"Budget {config.budget} is more than this server allows per run ({self.max_budget}).")
        if len(config.seeds) > self.max_seeds:
            raise UsageError(f"{len(config.seeds)} seeds are more than this server allows per run ({self.max_seeds}).")
