"""Example descriptor functions for the ``gym`` task (``tasks.gym_task.GymTask``).

Each one follows the descriptor contract::

    f(observations: np.ndarray (B, T + 1, obs_dim) float32,  # reset obs, then one per step,
                                                             # padded with the last one after
                                                             # an episode's end
      lengths: np.ndarray (B,) int) -> np.ndarray (B, d)     # steps each episode took

and names the ``descriptor_bounds`` to use with it. Use one in a config as
``descriptor: "experiments.examples.gym_descriptors:pendulum_upright_and_spin"``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["episode_mean", "pendulum_upright_and_spin", "inverted_pendulum_cart",
           "half_cheetah_speed_and_pitch"]


def episode_mean(observations: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Mean of each observation over the steps of its episode, (B, obs_dim) float64.

    Averages the observations after steps ``1 .. lengths[i]`` (the reset observation is left
    out, it says nothing about the policy); an episode of length 0 gives its reset observation.
    Padding past an episode's end is masked out, so early terminations are not biased.
    """
    steps = observations.shape[1] - 1
    lengths = np.asarray(lengths)
    if steps == 0:
        return observations[:, 0].astype(np.float64)
    mask = np.arange(1, steps + 1)[None, :] <= lengths[:, None]  # (B, T)
    total = (observations[:, 1:] * mask[..., None]).sum(axis=1, dtype=np.float64)
    mean = total / np.maximum(lengths, 1)[:, None]
    return np.where((lengths > 0)[:, None], mean, observations[:, 0])


def pendulum_upright_and_spin(observations: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``Pendulum-v1``: how upright the pole was, and which way and how fast it turned.

    Observations are ``(cos theta, sin theta, theta_dot)`` with ``theta = 0`` upright.

    Returns (B, 2): mean ``cos theta`` over the episode (1 = upright throughout, -1 = hanging
    throughout) and mean angular velocity (rad/s; the sign is the net direction of rotation,
    a pole spun round and round has a large one).

    ``descriptor_bounds: [[-1, 1], [-8, 8]]`` (8 rad/s is the environment's speed limit).
    """
    mean = episode_mean(observations, lengths)
    return np.stack([mean[:, 0], mean[:, 2]], axis=1)


def inverted_pendulum_cart(observations: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``InvertedPendulum-v5``: where the cart balanced the pole, and which way the pole leaned.

    Observations are ``(cart position, pole angle, cart velocity, pole angular velocity)``;
    the episode terminates once ``|pole angle| > 0.2`` rad, and the cart's rail is [-1, 1].

    Returns (B, 2): mean cart position and mean pole angle over the episode.

    ``descriptor_bounds: [[-1, 1], [-0.2, 0.2]]``.
    """
    mean = episode_mean(observations, lengths)
    return np.stack([mean[:, 0], mean[:, 1]], axis=1)


def half_cheetah_speed_and_pitch(observations: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``HalfCheetah-v5`` (default observation, without the x position): gait speed and posture.

    Observation 1 is the torso's pitch angle (rad), observation 8 its forward velocity (m/s).

    Returns (B, 2): mean forward velocity (negative = running backwards) and mean pitch (a
    cheetah running on its back or nose-down has a large one).

    ``descriptor_bounds: [[-5, 10], [-1.5, 1.5]]``.
    """
    mean = episode_mean(observations, lengths)
    return np.stack([mean[:, 8], mean[:, 1]], axis=1)
