"""TD3 pieces for PGA-ME and DCG-ME / DCRL-ME, usable without the engine: (descriptor-conditioned)
twin critics and tanh actors, a ring replay buffer with achieved/intended descriptors, the TD3
learner and the batched policy-gradient variation of population genomes."""

from evo.rl.networks import (
    Actor,
    Critic,
    DescriptorConditionedActor,
    DescriptorConditionedCritic,
    actor_to_genome,
    fold_descriptor,
    make_adam,
    make_generator,
    normalise_descriptors,
)
from evo.rl.pg import pg_variation
from evo.rl.replay import ReplayBuffer
from evo.rl.td3 import TD3

__all__ = [
    "Actor",
    "Critic",
    "DescriptorConditionedActor",
    "DescriptorConditionedCritic",
    "ReplayBuffer",
    "TD3",
    "actor_to_genome",
    "fold_descriptor",
    "make_adam",
    "make_generator",
    "normalise_descriptors",
    "pg_variation",
]
