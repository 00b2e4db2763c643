"""EPO: evolutionary prompt optimisation (black box), with the paper's settings.

Generation 0 is `population` candidates drawn by `init` (by default fresh samples,
sparse or the paper's uniform, see Optimizer.fresh; the hybrid optimiser draws from
GPO's learned distribution, led by its argmax `first` under --protocol paper). Each later generation
takes the `top_k` best candidates seen so far as parents and proposes
`mutations` mutants (each gene re-drawn with probability `mutation_prob`) and
`crossovers` uniform crossovers of two parents. Visited candidates are never
proposed again.
"""

from __future__ import annotations

from dpodiff.optimizers.base import Candidate, Optimizer, Sampler


class Evolution(Optimizer):
    name = "epo"

    def __init__(
        self,
        sizes: list[int],
        seed: int = 0,
        population: int = 20,
        top_k: int = 10,
        mutations: int = 10,
        crossovers: int = 10,
        mutation_prob: float = 0.1,
        init: Sampler | None = None,
        sampling: str = "sparse",
        first: Candidate | None = None,
    ):
        super().__init__(sizes, seed, sampling)
        self.population, self.top_k = population, top_k
        self.mutations, self.crossovers, self.mutation_prob = mutations, crossovers, mutation_prob
        self.init, self.first = init, first
        self.generation = 0

    def settings(self) -> dict:
        return {
            "population": self.population,
            "top_k": self.top_k,
            "mutations": self.mutations,
            "crossovers": self.crossovers,
            "mutation_prob": self.mutation_prob,
            "init": "custom" if self.init else self.sampling,
            "first": list(self.first) if self.first else None,
        }

    def ask(self) -> list[Candidate]:
        parents = [c for c, _ in self.ranked()[: self.top_k]]
        self.generation += 1
        if not parents or self.generation == 1:
            draw = (lambda: self.init(self.rng)) if self.init else (lambda: self.fresh(self.rng))
            head = [self.first] if self.first is not None and self.first not in self.told else []
            return head + self.novel_or_uniform(draw, self.population - len(head), exclude=head)  # a narrow init may run dry
        mutants = self.novel(lambda: self.mutate(self.rng.choice(parents)), self.mutations)
        children = self.novel(lambda: self.crossover(*self._two(parents)), self.crossovers, exclude=mutants)
        return mutants + children

    def mutate(self, parent: Candidate) -> Candidate:
        """Re-draw each gene with probability mutation_prob (at least one gene changes when it can)."""
        genes = list(parent)
        mutable = [i for i, k in enumerate(self.sizes) if k > 1]
        for i in mutable:
            if self.rng.random() < self.mutation_prob:
                genes[i] = self.rng.randrange(self.sizes[i])
        if tuple(genes) == parent and mutable:
            i = self.rng.choice(mutable)
            genes[i] = self.rng.choice([v for v in range(self.sizes[i]) if v != parent[i]])
        return tuple(genes)

    def crossover(self, a: Candidate, b: Candidate) -> Candidate:
        """Uniform crossover: each gene from either parent with probability 1/2."""
        return tuple(x if self.rng.random() < 0.5 else y for x, y in zip(a, b))

    def _two(self, parents: list[Candidate]) -> tuple[Candidate, Candidate]:
        if len(parents) < 2:
            return parents[0], parents[0]
        a, b = self.rng.sample(parents, 2)
        return a, b
