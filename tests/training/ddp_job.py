"""A few training steps of a small model on fixed random windows, run by
tests/training/test_distributed.py once alone and once as two torchrun processes.

    python ddp_job.py OUT BATCH_SIZE

Writes each process's final weights to ``OUT/rank<R>.safetensors`` (rank 0 also writes the run,
``OUT/run``)."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from pseudo3d.training import distributed
from pseudo3d.training.config import TrainConfig
from pseudo3d.training.loop import TrainingJob, train
from pseudo3d.training.models import ModelConfig, build_model


class Windows(torch.utils.data.Dataset):
    """64 windows of 0.8 s of noise and 20 frames of 6 values, the same in every process; map-style,
    in order, so two processes taking every other window see what one process sees in a batch
    twice as large."""

    def __init__(self):
        generator = torch.Generator().manual_seed(7)
        self.audio = torch.randn(64, 12_800, generator=generator)
        self.target = torch.randn(64, 20, 6, generator=generator)

    def __len__(self):
        return 64

    def __getitem__(self, index):
        return {"audio": self.audio[index], "target": self.target[index], "key": f"w{index}", "start_frame": 0,
                "fps": 25.0}


def main() -> None:
    out, batch_size = Path(sys.argv[1]), int(sys.argv[2])
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="convrnn", output_dim=6, hidden=32, n_mels=40, conv_layers=2,
                                    decoder_layers=1, dropout=0.0))
    config = TrainConfig(steps=4, batch_size=batch_size, window_s=0.8, num_workers=0, warmup_steps=1, log_every=1,
                         device="cpu")
    job = TrainingJob(model=model, norm_mean=torch.zeros(6), norm_std=torch.ones(6), train_data=lambda epoch: Windows(),
                      config=config, run_dir=out / "run", run_config={"stage": "test"})
    train(job, progress=False)
    processes = distributed.setup("cpu")
    save_file({name: value.contiguous() for name, value in job.model.state_dict().items()},
              str(out / f"rank{processes.rank}.safetensors"))
    distributed.finish(processes)


if __name__ == "__main__":
    main()
