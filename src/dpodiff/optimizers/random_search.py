"""Random search: the baseline every optimiser must beat."""

from dpodiff.optimizers.base import Candidate, Optimizer


class RandomSearch(Optimizer):
    """Fresh samples (sparse or uniform, see Optimizer.fresh), never repeating one."""

    name = "random"

    def __init__(self, sizes: list[int], seed: int = 0, batch: int = 10, sampling: str = "sparse"):
        super().__init__(sizes, seed, sampling)
        self.batch = batch

    def ask(self) -> list[Candidate]:
        return self.novel_or_uniform(lambda: self.fresh(self.rng), self.batch)  # sparse draws of a small space may run dry

    def settings(self) -> dict:
        return {"batch": self.batch, "sampling": self.sampling}
