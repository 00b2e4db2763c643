"""Random search: the baseline every optimiser must beat."""

from dpodiff.optimizers.base import Candidate, Optimizer


class RandomSearch(Optimizer):
    """Fresh samples (sparse or uniform, see Optimizer.fresh), never repeating one."""

    name = "random"

    def __init__(self, sizes: list[int], seed: int = 0, batch: int = 10, sampling: str = "sparse"):
        super().__init__(sizes, seed, sampling)
        self.batch = batch

    def ask(self) -> list[Candidate]:
        batch = self.novel(lambda: self.fresh(self.rng), self.batch)
        # sparse draws of a small space may run dry: fill up uniformly
        return batch + self.novel(lambda: self.uniform(self.rng), self.batch - len(batch), exclude=batch)

    def settings(self) -> dict:
        return {"batch": self.batch, "sampling": self.sampling}
