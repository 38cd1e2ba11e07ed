"""Experiment module of notebook 00: the embedded benchmark and its ResNet18 baseline (no paper).

The benchmark (``fgic.data.synthetic``) is this workspace's own; notebook 00 shows how it is made, trains a
ResNet18 from scratch on it with the seeds ``S.seeds`` (``fgic.settings.BenchmarkTour``), and introduces the
statistics every notebook compares rows with (``fgic.stats``, ``fgic.evidence``).

- ``grid(S)``: ``{run_name("benchmark", "ResNet18", seed): RunSpec}``, one run per seed (``benchmark`` is
  the embedded benchmark, or your data in its place: ``fgic.profiles.data_source``);
- ``paper_numbers()``: empty (there is no paper to compare with);
- ``tables(S, records)``: ``{"baseline": ...}``, the ``fgic.evidence.compare`` row of the baseline with its
  95 % t interval, every seed's value, chance (1 / K) and whether every seed reaches ``learn_threshold``
  (5 x chance, capped at halfway from chance to 100 % below 9 classes);
- ``conclusions(S, records)``: three computed lines: the baseline learns (every seed >= the threshold), the
  one-part twins are confused more than other class pairs (paired over seeds), and the placement box carries
  no class information (``placement_check``: a k-NN on the boxes, computed live from the profile's data).

Helpers the notebook uses: ``twin_confusion`` (per-seed confusion with the twin vs other classes),
``placement_check`` (the k-NN check of tests/test_synthetic.py on the profile's train / test splits),
``correct`` and ``seed_mcnemar`` (per-image correctness, McNemar between two seeds of the same setting).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from fgic import evidence, profiles, stats
from fgic.experiments import base
from fgic.health import LEARNS, learn_threshold  # noqa: F401 (re-exported: the notebook reads them here)
from fgic.runs import RunSpec
from fgic.settings import BenchmarkTour

NOTEBOOK = "00_benchmark_tour"
ROW = "ResNet18"  # the one compared row: torchvision's ResNet-18 (at S.model_kw's width), from scratch
TABLE = "baseline"
THRESHOLD = "learn threshold"  # column of the baseline table: learn_threshold(K) in %
EVERY = "every seed >= threshold"  # column: "yes" / "no" / "no healthy seed"
KNN = 15  # neighbours of the placement check's k-NN classifier (as tests/test_synthetic.py)


def spec(S: BenchmarkTour, seed: int) -> RunSpec:
    """The baseline run of ``seed``: ResNet18 from scratch on the benchmark (or your data), plain transform."""
    data, data_kw, size = profiles.data_source(S)
    return RunSpec(model="resnet18", model_kw=dict(S.model_kw), dataset=data, data_kw=data_kw, transform="plain",
                   transform_kw={"image_size": size}, train={**S.train, "seed": int(seed)})


@base.with_extra_seeds
def grid(S: BenchmarkTour) -> dict[str, RunSpec]:
    """Every run of the profile: the baseline once per seed of ``S.seeds``."""
    return {base.run_name(base.BENCHMARK, ROW, s): spec(S, s) for s in S.seeds}


def paper_numbers() -> pd.DataFrame:
    """No paper: an empty ``paper_numbers`` frame (the columns every module's frame has)."""
    return base.paper_frame([])


def num_classes(S: BenchmarkTour, records: Mapping[str, object]) -> int | None:
    """K of the runs (their records), else of the benchmark; None on your data without a record."""
    for rec in records.values():
        k = (rec or {}).get("num_classes") if isinstance(rec, Mapping) else getattr(rec, "num_classes", None)
        if k:
            return int(k)
    return None if S.data is not None else S.benchmark.num_classes


def _cells(S: BenchmarkTour, records: Mapping[str, object]) -> dict[str, dict[int, object]]:
    return base.cells(records, base.BENCHMARK, [ROW], seeds=S.seeds)


def baseline_table(S: BenchmarkTour, records: Mapping[str, object]) -> pd.DataFrame:
    """The baseline's row: ``evidence.compare`` (no baseline to pair with) plus the 95 % t interval of the
    mean, every seed's value, the lowest seed, chance = 100 / K, the ``learn_threshold`` and whether every
    seed reaches it (no failed seed and the lowest one at or above it)."""
    cells = _cells(S, records)
    t = evidence.compare(cells)
    ok, _ = evidence.healthy(cells[ROW])
    s = stats.summarize(list(ok.values()))
    k = num_classes(S, records)
    chance = 100.0 / k if k else math.nan
    low = min(ok.values()) * 100 if ok else math.nan
    t["95 % CI"] = f"[{s.ci[0] * 100:.1f}, {s.ci[1] * 100:.1f}]" if s.n >= 2 else "n < 2"
    t["per seed"] = ", ".join(f"s{seed} {v * 100:.1f}" for seed, v in ok.items()) or "none"
    t["min seed"] = low
    t["chance"] = chance
    t[THRESHOLD] = 100 * learn_threshold(k) if k else math.nan
    every = not t.loc[ROW, "failed"] and bool(ok) and low >= t.loc[ROW, THRESHOLD]
    t[EVERY] = ("yes" if every else "no") if ok else "no healthy seed"
    return t


def tables(S: BenchmarkTour, records: Mapping[str, object]) -> dict[str, pd.DataFrame]:
    """``{"baseline": baseline_table}``: the one table of notebook 00 (no paper column: there is no paper)."""
    return {TABLE: baseline_table(S, records)}


# ------------------------------------------------------------------------------------- twins
def twin_pairs(k: int) -> list[tuple[int, int]]:
    """Class pairs ``(i, j)``, i < j, of the benchmark with K = ``k`` classes that differ in exactly one part."""
    from fgic.data.synthetic import class_table

    t = class_table(k)
    d = (t[:, None] != t[None]).sum(-1)
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(d == 1)) if i < j]


def twin_confusion(S: BenchmarkTour, records: Mapping[str, object]) -> pd.DataFrame:
    """Per healthy seed: the share of a class's test images given to its one-part twin (mean over the twin
    pairs, both directions) and to any other single non-twin class (mean over those ordered pairs), in %."""
    k = num_classes(S, records)
    pairs = twin_pairs(k) if S.data is None and k else []
    twins = {p for i, j in pairs for p in ((i, j), (j, i))}
    ok, _ = evidence.healthy(_cells(S, records)[ROW])
    rows = []
    for seed, rec in _cells(S, records)[ROW].items():
        if seed not in ok or not pairs:
            continue
        conf = np.asarray(rec["metrics"]["confusion"], dtype=float)
        rate = conf / np.maximum(conf.sum(1, keepdims=True), 1)
        other = [rate[i, j] for i in range(k) for j in range(k) if i != j and (i, j) not in twins]
        rows.append({"seed": seed, "to twin": 100 * float(np.mean([rate[i, j] for i, j in twins])),
                     "to another class": 100 * float(np.mean(other))})
    df = pd.DataFrame(rows, columns=["seed", "to twin", "to another class"]).set_index("seed")
    df["difference"] = df["to twin"] - df["to another class"]
    return df


# ------------------------------------------------------------------------------------- placement
def _knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                  k: int = KNN) -> float:
    d = ((test_x[:, None] - train_x[None]) ** 2).sum(-1)  # (N_test, N_train)
    votes = train_y[np.argsort(d, 1)[:, :k]]  # (N_test, k)
    pred = np.array([np.bincount(v, minlength=int(train_y.max()) + 1).argmax() for v in votes])
    return float((pred == test_y).mean())


def placement_check(S: BenchmarkTour) -> pd.DataFrame:
    """Can a box tell the class? A ``KNN``-nearest-neighbour classifier fitted on the training split's boxes
    (x0, y0, x1, y1 / image side) and scored on the test split, for the ``placement`` box (where the pose's
    envelope was placed: position and size) and, as the reference that shows the check can find a cue, the
    tight ``object`` box (a long beak or pointed tail makes it longer: part shape, the label itself).

    Columns: k-NN top-1 (%), its 95 % Wilson interval, chance, the exact binomial p against chance, and
    "at chance" / "above chance" (p < 0.05 and above chance). Empty on your own data (no boxes)."""
    from scipy.stats import binomtest

    from fgic.data import build_dataset
    from fgic.data.synthetic import BOX_KEYS

    cols = ["k-NN top-1", "95 % CI", "chance", "p", "n test", "verdict"]
    if S.data is not None:
        return pd.DataFrame(columns=cols)
    kw, size = S.benchmark.kw(), S.benchmark.image_size
    tr, te = build_dataset("synthetic", split="train", **kw), build_dataset("synthetic", split="test", **kw)
    ytr, yte = tr.labels.numpy(), te.labels.numpy()
    chance = 1.0 / tr.num_classes
    rows = {}
    for label, key in (("placement box", "placement"), ("object box (reference)", "object")):
        b = BOX_KEYS.index(key)
        acc = _knn_accuracy(tr.boxes[:, b].numpy() / size, ytr, te.boxes[:, b].numpy() / size, yte)
        hits = round(acc * len(yte))
        res = binomtest(hits, len(yte), chance)
        ci = res.proportion_ci(1 - stats.ALPHA, method="wilson")
        above = res.pvalue < stats.ALPHA and acc > chance
        rows[label] = {"k-NN top-1": 100 * acc, "95 % CI": f"[{100 * ci.low:.1f}, {100 * ci.high:.1f}]",
                       "chance": 100 * chance, "p": float(res.pvalue), "n test": len(yte),
                       "verdict": "above chance" if above else "at chance"}
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


# ------------------------------------------------------------------------------------- per image
def correct(record, dataset, batch_size: int = 256) -> torch.Tensor:
    """(N,) bool: which images of ``dataset`` (normalised as the run saw them) the run classifies right."""
    from torch.utils.data import DataLoader

    model = record.predictor()
    out = []
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            out.append(model(x).argmax(1) == y)
    return torch.cat(out)


def seed_mcnemar(S: BenchmarkTour, records: Mapping[str, object], dataset) -> pd.DataFrame:
    """McNemar's exact test between the first healthy seed and each other healthy seed of the baseline, on the
    same test images: both right, only one right (the discordant images), the accuracy difference, its interval
    and p. The two runs are the same setting, so this measures seed-to-seed variation image by image."""
    ok, _ = evidence.healthy(_cells(S, records)[ROW])
    seeds = list(ok)
    cols = ["both right", "only first seed", "only this seed", "diff", "95 % CI", "p"]
    if len(seeds) < 2:
        return pd.DataFrame(columns=cols)
    recs = _cells(S, records)[ROW]
    first = correct(recs[seeds[0]], dataset).numpy()
    rows = {}
    for s in seeds[1:]:
        other = correct(recs[s], dataset).numpy()
        c = stats.mcnemar(first, other)
        rows[f"s{s} vs s{seeds[0]}"] = {
            "both right": int((first & other).sum()), "only first seed": int((first & ~other).sum()),
            "only this seed": int((other & ~first).sum()), "diff": 100 * c.diff,
            "95 % CI": f"[{100 * c.ci[0]:+.1f}, {100 * c.ci[1]:+.1f}]", "p": c.p}
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


# ------------------------------------------------------------------------------------- conclusions
def _learns(S: BenchmarkTour, records: Mapping[str, object]) -> base.Conclusion:
    t = baseline_table(S, records)
    r = t.loc[ROW]
    key = f"{TABLE}/{base.BENCHMARK}/{ROW}"
    failed = f" {r['failed']}." if r["failed"] else ""
    if not r["n"]:
        return base.Conclusion(key, f"ResNet18 learns the benchmark: no healthy seed.{failed}", "no healthy seed")
    ci = f", 95 % CI {r['95 % CI']}" if r["n"] >= 2 else ""
    every = r[EVERY] == "yes"
    five = math.isclose(r[THRESHOLD], LEARNS * r["chance"])
    what = f"{LEARNS}x chance" if five else "halfway from chance to 100 %"
    cmp = ">=" if r["min seed"] >= r[THRESHOLD] else "<"
    return base.Conclusion(
        key,
        f"ResNet18 learns the benchmark: {'yes' if every else 'no'}: test top-1 {r['ours']}{ci}; lowest "
        f"{'healthy ' if r['failed'] else ''}seed {r['min seed']:.1f} % {cmp} "
        f"{r[THRESHOLD]:.1f} % ({what}; chance {r['chance']:.1f} %).{failed}",
        "learns" if every else "below the threshold")


def _twins(S: BenchmarkTour, records: Mapping[str, object]) -> base.Conclusion:
    key = f"twins/{base.BENCHMARK}/{ROW}"
    text = "The one-part twins are confused more often than other class pairs"
    if S.data is not None:
        return base.Conclusion(key, f"{text}: not testable here (your data has no one-part twins)", "not testable")
    df = twin_confusion(S, records)
    if len(df) < 2:
        return base.Conclusion(key, f"{text}: not testable here (n < 2 paired seeds ({len(df)}))",
                               f"n < 2 paired seeds ({len(df)})")
    c = stats.paired_seeds(list(df["to another class"] / 100), list(df["to twin"] / 100))
    v = stats.verdict(c)  # B = the twin, A = another class: "B better" = confused with the twin more often
    word = {"B better": "yes", "B worse": "no, less often",
            "no significant difference": "no significant difference"}[v]
    return base.Conclusion(
        key,
        f"{text}: {word}: {df['to twin'].mean():.1f} % of a class's test images go to its twin vs "
        f"{df['to another class'].mean():.1f} % to any other single class, difference {c.format()}.",
        {"B better": "more often", "B worse": "less often"}.get(v, v))


def _placement(S: BenchmarkTour) -> base.Conclusion:
    key = f"placement/{base.BENCHMARK}/placement-box"
    text = "The placement box (position and size) carries no class information"
    if S.data is not None:
        return base.Conclusion(key, f"{text}: not testable here (your data has no placement boxes)", "not testable")
    t = placement_check(S)
    p, o = t.loc["placement box"], t.loc["object box (reference)"]
    numbers = (f"a {KNN}-NN on the placement box scores {p['k-NN top-1']:.1f} % {p['95 % CI']} (chance "
               f"{p['chance']:.1f} %, p = {p['p']:.3f}, {p['n test']} test images: {p['verdict']}); on the tight "
               f"object box (the reference: it differs a little between classes) {o['k-NN top-1']:.1f} % "
               f"{o['95 % CI']} ({o['verdict']})")
    if p["verdict"] == "above chance":
        return base.Conclusion(key, f"{text}: contradicted: {numbers}.", "above chance")
    if o["verdict"] == "at chance":  # the check found no cue where there is one: too few images to tell
        return base.Conclusion(key, f"{text}: not testable here (the reference cue is not found either: too few "
                                    f"test images): {numbers}.", "reference at chance")
    return base.Conclusion(key, f"{text}: reproduced: {numbers}.", "at chance")


def conclusions(S: BenchmarkTour, records: Mapping[str, object]) -> list[base.Conclusion]:
    """The "What this shows" lines, each computed: the baseline learns, the twins are the hard pairs, the
    placement box carries no class information."""
    return [_learns(S, records), _twins(S, records), _placement(S)]
