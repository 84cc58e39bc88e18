"""Training steps of a small model with dropout on fixed random windows, through two DataLoader
workers, for tests/training/test_resume.py (killed and resumed, or run whole).

    python resume_job.py RUN STEPS
"""

import sys
from pathlib import Path

import torch

from pseudo3d.training.config import TrainConfig
from pseudo3d.training.loop import TrainingJob, train
from pseudo3d.training.models import ModelConfig, build_model


class Windows(torch.utils.data.IterableDataset):
    """An endless-enough stream of 0.8-s noise windows with random targets, split across the
    DataLoader's workers, reshuffled each epoch."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        generator = torch.Generator().manual_seed(1000 * self.epoch + worker)
        for index in range(worker, 24, workers):
            yield {"audio": torch.randn(12_800, generator=generator), "target": torch.randn(20, 6, generator=generator),
                   "key": f"e{self.epoch}w{index}", "start_frame": 0, "fps": 25.0}


def main() -> None:
    run, steps = Path(sys.argv[1]), int(sys.argv[2])
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="convrnn", output_dim=6, hidden=32, n_mels=40, conv_layers=2,
                                    decoder_layers=1, dropout=0.3))
    config = TrainConfig(steps=steps, batch_size=4, window_s=0.8, num_workers=2, warmup_steps=2, log_every=1,
                         checkpoint_every=7, device="cpu")
    job = TrainingJob(model=model, norm_mean=torch.zeros(6), norm_std=torch.ones(6), train_data=Windows,
                      config=config, run_dir=run, run_config={"stage": "test"})
    train(job, progress=False)


if __name__ == "__main__":
    main()
