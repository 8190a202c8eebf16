"""Optimizer factories and the step schedule; metrics against hand-counted values."""

import pytest
import torch

from layerscope.lab import metrics, optimizers  # noqa: F401  (registers the entries)
from layerscope.lab.metrics import accuracy, top5, topk_correct
from layerscope.lab.optimizers import step_schedule
from layerscope.registry import METRICS, OPTIMIZERS


def test_registries_hold_the_built_ins():
    assert {"adam", "adamw", "rmsprop", "sgd"} <= set(OPTIMIZERS.list())
    assert {"accuracy", "top5"} <= set(METRICS.list())


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_takes_the_shared_keywords_and_steps(name):
    model = torch.nn.Linear(3, 1)
    before = model.weight.detach().clone()
    opt = OPTIMIZERS.create(
        name, params=model.parameters(), lr=0.05, momentum=0.5, weight_decay=0.1
    )
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    assert not torch.equal(before, model.weight)
    assert opt.defaults["lr"] == 0.05 and opt.defaults["weight_decay"] == 0.1
    if name in ("adam", "adamw"):
        assert opt.defaults["betas"] == (0.5, 0.999)
    else:
        assert opt.defaults["momentum"] == 0.5


def test_plain_sgd_step_by_hand():
    # w <- w - lr * grad with momentum 0 and no decay; grad of sum(w . x) is x.
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = optimizers.sgd([w], lr=0.5, momentum=0.0)
    (w * torch.tensor([2.0, -4.0])).sum().backward()
    opt.step()
    assert w.tolist() == [0.0, 4.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"lr": 0.0}, "lr must be > 0"), ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
     ({"weight_decay": -1.0}, "weight_decay must be >= 0")],
)  # fmt: skip
def test_optimizer_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizers.adam(torch.nn.Linear(1, 1).parameters(), **kwargs)


def test_step_schedule_decays_every_step_epochs_and_constant_without_step():
    opt = optimizers.sgd(torch.nn.Linear(1, 1).parameters(), lr=0.8)
    schedule = step_schedule(opt, step=3, factor=0.5)
    rates = []
    for _ in range(7):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert rates == [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2]
    constant = step_schedule(opt2 := optimizers.adam(torch.nn.Linear(1, 1).parameters()), None)
    for _ in range(4):
        opt2.step()
        constant.step()
    assert opt2.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="step must be an int >= 1"):
        step_schedule(opt, 0)
    with pytest.raises(ValueError, match="factor must be > 0"):
        step_schedule(opt, 2, 0.0)


def test_accuracy_and_top5_by_hand():
    logits = torch.tensor(
        [
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # ranks: 6, 5, 4, 3, 2 in the top 5
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # ranks: 0, 1, 2, 3, 4
            [0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 1.0],
        ]
    )
    targets = torch.tensor([6, 5, 6])
    # row 0: top-1 is 6 (hit); row 1: 5 is 6th (miss in both); row 2: top-1 2, 6 second (top-5 hit)
    assert int(accuracy(logits, targets)) == 1
    assert int(top5(logits, targets)) == 2
    assert int(topk_correct(logits, targets, 6)) == 3


def test_counts_add_over_batches_and_small_class_counts():
    logits, targets = torch.randn(10, 4), torch.randint(0, 4, (10,))
    whole = int(accuracy(logits, targets))
    assert whole == int(accuracy(logits[:3], targets[:3])) + int(accuracy(logits[3:], targets[3:]))
    assert whole == int((logits.argmax(1) == targets).sum())
    assert int(top5(logits, targets)) == 10  # 4 classes: every target is in the top 5


def test_metric_shape_errors():
    with pytest.raises(ValueError, match=r"logits must be \(N, classes\)"):
        accuracy(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be \(N,\)"):
        accuracy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="k must be >= 1"):
        topk_correct(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 0)
