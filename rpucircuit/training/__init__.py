"""Training on the model path: MNIST (:mod:`.data`), the training loop with checkpoints and
histories (:mod:`.loop`) and its epoch hooks (:mod:`.hooks`), experiments run as cached
sweeps (:mod:`.sweep`) and their tables, plots and summaries (:mod:`.report`).

``train`` and ``run_job`` are re-exported here: ``"rpucircuit.training:run_job"`` names the
job function in experiment files.
"""

from rpucircuit.training.loop import TrainResult, run_job, train

__all__ = ["TrainResult", "run_job", "train"]
