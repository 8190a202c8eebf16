"""Train the tiny BERT with the Hugging Face Trainer under torchrun (2 CPU processes, gloo);
run by test_callbacks_distributed.py.

    python -m torch.distributed.run --nproc_per_node 2 ddp_huggingface.py RUN_DIR WEIGHTS

Rank 0 saves the final weights to WEIGHTS for the test's own computation.
"""

from __future__ import annotations

import os
import sys


def main(run_dir: str, weights: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers.trainer
    from test_huggingface import tiny_bert, train

    from layerscope.integrations.huggingface import LayerscopeCallback

    torch.set_num_threads(1)
    # tests/datasets/ is no library (see test_huggingface._no_datasets_library)
    transformers.trainer.is_datasets_available = lambda: False
    model = tiny_bert()
    trainer = train(model, [LayerscopeCallback(run_dir)], os.path.dirname(weights),
                    ddp_backend="gloo")  # fmt: skip
    if trainer.is_world_process_zero():
        torch.save(model.state_dict(), weights)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
