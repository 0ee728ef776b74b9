"""pix2pix training: the configuration (:mod:`.config`), the trainer with its setup in named
steps (:mod:`.trainer`), checkpoints, records and samples (:mod:`.records`), pair data and
augmentations (:mod:`.data`) and fine-tuning from a parent model (:mod:`.finetune`)."""

from .config import CHECKPOINT, TrainConfig, lr_factor, resume_config
from .trainer import Trainer, train

__all__ = ["CHECKPOINT", "TrainConfig", "Trainer", "lr_factor", "resume_config", "train"]
