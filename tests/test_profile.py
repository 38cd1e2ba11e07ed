"""fgic.cost: parameter and FLOP counts against hand counts, latency sanity."""

import torch
import torch.nn as nn

from fgic.cost import complexity, inference_time, params


def test_conv_flops_match_hand_count():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    out = complexity(conv, (3, 8, 8))
    # one MAC per (output channel, input channel, kernel tap, output pixel); FLOPs = 2 x MACs
    assert out["flops"] == 2 * 8 * 3 * 9 * 64
    assert out["macs"] == 8 * 3 * 9 * 64
    assert out["params"] == 8 * 3 * 9 + 8
    assert abs(out["gflops"] - out["flops"] / 1e9) < 1e-15


def test_linear_and_sequential_flops_add_up():
    lin = nn.Linear(12, 5)
    assert complexity(lin, (12,))["flops"] == 2 * 12 * 5
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7),
    )
    hand = 2 * (4 * 3 * 9 * 100) + 2 * (4 * 1 * 9 * 100) + 2 * 4 * 7  # conv + depthwise conv + linear
    assert complexity(net, (3, 10, 10))["flops"] == hand


def test_complexity_restores_training_mode_and_bn_stats():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.train()
    before = net[1].running_mean.clone()
    complexity(net, (3, 8, 8))
    assert net.training and net[1].training
    assert torch.equal(net[1].running_mean, before)
    net.eval()
    complexity(net, (3, 8, 8))
    assert not net.training


def test_params_trainable_only():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    for p in net[0].parameters():
        p.requires_grad_(False)
    assert params(net) == 4 * 3 + 3 + 3 * 2 + 2
    assert params(net, trainable_only=True) == 3 * 2 + 2
    shared = nn.Linear(2, 2)
    assert params(nn.Sequential(shared, shared)) == 6  # shared weights counted once


def test_inference_time_positive_and_mode_restored():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    net.train()
    t = inference_time(net, (3, 16, 16), batch=2, repeats=3, warmup=1)
    assert t["median_ms"] > 0 and t["mean_ms"] > 0 and t["min_ms"] > 0
    assert t["min_ms"] <= t["median_ms"]
    assert t["images_per_s"] > 0 and t["batch"] == 2 and t["device"] == "cpu"
    assert net.training
