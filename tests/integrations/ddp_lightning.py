"""Fit DigitsModule under a 2-process CPU strategy (gloo); run by test_callbacks_distributed.py.

    python ddp_lightning.py {ddp,ddp_spawn} RUN_DIR

Under ``ddp`` each rank reads its half of the first 1400 training images (a DistributedSampler
without shuffling: rank r gets images r, r + 2, ...) in batches of 50, and half of the 360 test images in batches
of 30, so the two ranks' batch k together are the single-process batch k of 100 (or 60).
"""

from __future__ import annotations

import os
import sys


def main(strategy: str, run_dir: str) -> None:
    import lightning as L
    import torch
    from test_lightning import DigitsModule, make_trainer
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    import layerscope as ls
    from layerscope.integrations.lightning import LayerscopeCallback

    torch.set_num_threads(1)
    splits = ls.load_dataset("digits", resolution=8, augment=False)
    train = Subset(splits.train, range(1400))
    callback = LayerscopeCallback(run_dir)
    if strategy == "ddp":  # Lightning's own DistributedSampler would shuffle the training set
        rank = int(os.environ.get("LOCAL_RANK", 0))
        samplers = [DistributedSampler(data, num_replicas=2, rank=rank, shuffle=False)
                    for data in (train, splits.test)]  # fmt: skip
    else:  # spawned ranks: Lightning shards (and shuffles) in each
        samplers = [None, None]
    trainer = make_trainer(L, [callback], strategy=strategy, devices=2, num_sanity_val_steps=2,
                           use_distributed_sampler=strategy != "ddp")  # fmt: skip
    trainer.fit(DigitsModule(), DataLoader(train, batch_size=50, sampler=samplers[0]),
                DataLoader(splits.test, batch_size=30, sampler=samplers[1]))  # fmt: skip
    if trainer.is_global_zero:  # the parent under ddp_spawn: its callback saw nothing
        print("parent records:", len(callback.dataframe()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
