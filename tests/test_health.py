"""fgic.health: a diverged or collapsed run is a failed seed, with its reason (issue 10, item 15)."""

import math

import pytest

from fgic.health import failed_runs, final_accuracy, learn_threshold, run_health


def _rec(losses, accs, test_top1=None, num_classes=10, status="finished", group="smoke"):
    hist = [
        {"epoch": e + 1, "train_loss": lo, "val_acc": a, "test_acc": a} for e, (lo, a) in enumerate(zip(losses, accs))
    ]
    metrics = {} if test_top1 is None else {"test_top1": test_top1, "val_top1": test_top1}
    return {"run_id": "r", "status": status, "history": hist, "metrics": metrics, "num_classes": num_classes,
            "group": group}  # smoke: exempt from the learn check (tested on its own below)


def test_a_learning_run_is_healthy():
    assert run_health(_rec([2.0, 1.0, 0.5], [0.3, 0.5, 0.7], 0.7)) == (True, "")


def test_collapse_to_chance_after_warmup_is_a_failure():
    # the ACANet + MC seed of the default job: loss stuck near 5.8, test top-1 9.2 % with 10 classes
    ok, reason = run_health(_rec([6.64, 5.85, 5.79], [0.1, 0.09, 0.1], 0.092))
    assert not ok and reason.startswith("collapsed") and "9.2 %" in reason and "10.0 %" in reason
    # within the margin above chance is still chance; just above it is not (smoke records: no learn check)
    assert not run_health(_rec([2, 2], [0.1] * 2, 0.115))[0]
    assert run_health(_rec([2, 2], [0.1] * 2, 0.125))[0]
    assert run_health(_rec([2, 2], [0.1] * 2, 0.115), margin=0.01)[0]
    # chance depends on the number of classes: 30 % is far above chance for 10 classes, not for 4
    assert run_health(_rec([1, 1], [0.3] * 2, 0.3, num_classes=10))[0]
    assert not run_health(_rec([1, 1], [0.3] * 2, 0.26, num_classes=4))[0]


def test_no_collapse_verdict_during_warmup():
    assert run_health(_rec([2.3], [0.1], 0.1)) == (True, "")  # one epoch: still warming up
    assert not run_health(_rec([2.3], [0.1], 0.1), warmup=0)[0]


def test_divergence_and_unfinished_runs():
    ok, reason = run_health(_rec([2.0, math.nan, 1.0], [0.3, 0.5, 0.7], 0.7))
    assert not ok and reason.startswith("diverged") and "epoch 2" in reason
    ok, reason = run_health(_rec([2.0, math.inf], [0.3, 0.5], 0.5))
    assert not ok and "inf" in reason
    rec = {**_rec([2.0], [0.3]), "status": "failed", "error": "FloatingPointError: non-finite loss"}
    ok, reason = run_health(rec)
    assert not ok and "failed" in reason and "non-finite" in reason
    assert run_health(None) == (False, "not run")


def test_final_accuracy_falls_back_to_history():
    assert final_accuracy(_rec([1, 1], [0.2, 0.4])) == ("test_acc", pytest.approx(0.4))
    assert final_accuracy({"history": []}) is None
    bad = {"a": _rec([1, 1, 1], [0.1] * 3, 0.1), "b": _rec([1, 1, 1], [0.5] * 3, 0.5), "c": None}
    assert set(failed_runs(bad)) == {"a", "c"}


def test_a_run_below_five_times_chance_did_not_learn():
    below = _rec([2.0, 1.5], [0.2, 0.3], test_top1=0.49, group="default")  # 10 classes: 5 x chance = 50 %
    ok, why = run_health(below)
    assert not ok and why.startswith("did not learn") and "49.0 %" in why and "50.0 %" in why
    assert run_health(_rec([2.0, 1.5], [0.2, 0.3], test_top1=0.5, group="default"))[0]
    assert not run_health(_rec([2.0, 1.5], [0.2, 0.3], test_top1=0.3, group=None))[0]  # no group: checked too
    assert run_health(_rec([2.0, 1.5], [0.2, 0.3], test_top1=0.3, group="smoke"))[0]  # smoke: code paths only
    assert run_health(_rec([2.0], [0.3], test_top1=0.3, group="default"))[0]  # one epoch: not yet
    assert learn_threshold(4) == pytest.approx(0.625) and learn_threshold(20) == pytest.approx(0.25)
