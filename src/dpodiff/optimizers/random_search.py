"""Random search: the baseline every optimiser must beat."""

from dpodiff.optimizers.base import Candidate, Optimizer


class RandomSearch(Optimizer):
    """Uniform samples over the space, never repeating one."""

    name = "random"

    def __init__(self, sizes: list[int], seed: int = 0, batch: int = 10):
        super().__init__(sizes, seed)
        self.batch = batch

    def ask(self) -> list[Candidate]:
        return self.novel(lambda: self.uniform(self.rng), self.batch)

    def settings(self) -> dict:
        return {"batch": self.batch}
