"""Short real training: paper A's FC structure learns a separable task; k = 0.5 cannot.

Task: 4 classes in 16 dimensions, each a random prototype in [0, 1]^16 plus Gaussian noise
(σ = 0.15, clipped to [0, 1]), so classes are separable by a margin. Network 16-16-4
(sigmoid hidden, softmax output), SGD at mini-batch 1 with paper A's η = 0.01 on 6,000
samples, full paper-A baseline tile (:func:`gokmen_vlasov_2016`: stochastic BL-10 pulses,
device variations, DAC/ADC, noise, bounds, management). About one second per run.

Bounds, from 5 seeds measured when the test was written (2026-11, this code):

* baseline (k = 0): mean loss over the last 1,000 samples 0.46–0.60 (ln 4 = 1.386 at
  chance), held-out error 0–0.4 %. Asserted: loss < 0.85 and error < 10 %.
* k = 0.5, linear response: half-selected devices move by k·Δw against the coincidence
  update and cancel it (net mean Δw·n_c·(1 − 2k) = 0), so nothing is learned (paper A,
  Fig. 3): last-1,000 loss 1.45–2.02, held-out error 73–75 % (chance 75 %). Asserted:
  loss > 1.2 and error > 50 %.
* k = 0.1, rectifying: the net update keeps 80 % of its size and training works close to
  the baseline (paper A): last-1,000 loss 0.63–0.70, error 0.2–0.6 % (3 seeds); asserted
  with the baseline's bounds.
"""

from __future__ import annotations

import numpy as np
import pytest

from rpucircuit.config.rpu import gokmen_vlasov_2016
from rpucircuit.model.network import fully_connected

pytestmark = pytest.mark.training

N_TRAIN = 6000
N_TEST = 500


def separable_task(seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    protos = gen.random((4, 16))
    y = gen.integers(0, 4, size=N_TRAIN + N_TEST)
    x = np.clip(protos[y] + gen.normal(scale=0.15, size=(len(y), 16)), 0.0, 1.0)
    return x, y


def train(k: float, seed: int) -> tuple[float, float, float]:
    """(mean loss of the first 500 samples, of the last 1,000, held-out error rate)."""
    x, y = separable_task(100 + seed)
    net = fully_connected(
        (16, 16, 4), gokmen_vlasov_2016(k_half_select=k), rng=np.random.default_rng(seed)
    )
    losses = np.array(
        [net.train_step(xi, int(yi), 0.01) for xi, yi in zip(x[:N_TRAIN], y[:N_TRAIN], strict=True)]
    )
    err = net.evaluate(x[N_TRAIN:], y[N_TRAIN:])
    return float(losses[:500].mean()), float(losses[-1000:].mean()), err


@pytest.mark.parametrize("k", [0.0, 0.1])
def test_baseline_and_rectifying_devices_learn(k: float) -> None:
    first, last, err = train(k, seed=0)
    assert first > 1.2  # starts near chance (ln 4 = 1.386)
    assert last < 0.85
    assert err < 0.10


def test_linear_update_response_fails_to_learn() -> None:
    first, last, err = train(0.5, seed=0)
    assert first > 1.2
    assert last > 1.2
    assert err > 0.50
