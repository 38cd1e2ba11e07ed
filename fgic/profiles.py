"""Profiles: ``smoke`` (seconds per notebook, CI and nbval), ``default`` (the main job on the embedded
benchmark, all notebooks within about 30 min on a 2-core CPU) and ``paper`` (real data, the paper's
hyper-parameters, a GPU).

Settings live in ``params/``: ``profiles.yaml`` holds what every notebook of a profile shares (the
benchmark's knobs, image size), ``<notebook>.yaml`` what one notebook needs, each keyed by profile.
``settings("01_acanet", "smoke")`` merges the two (the notebook's keys win).

Your own data in place of the embedded benchmark: ``settings(..., dataset="folder", data_root=PATH)``
(or ``$FGIC_DATASET`` / ``$FGIC_DATA_ROOT``, plus ``data_file=`` / ``$FGIC_DATA_FILE`` for ``"csv"`` and
``image_size=`` / ``$FGIC_IMAGE_SIZE``) adds ``S["data"] = {"dataset", "data_kw", "image_size"}``;
``data_source(S)`` gives what a run should train on: that, or the benchmark.

Overrides: ``settings(..., overrides=["epochs=1", "max_steps=20"])`` or ``$FGIC_SET="epochs=1;max_steps=20"``
(what ``python -m fgic run-notebooks --set epochs=1 --set max_steps=20`` passes to every notebook's kernel)
change settings after the merge; ``apply_overrides`` says which keys do what.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from fgic import paths
from fgic.paths import project_root

PROFILES = ("smoke", "default", "paper")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def parse_bool(value, name: str = "value") -> bool:
    """A strict boolean: True/False, 1/0, or the strings true/false, yes/no, on/off, 1/0 (any case).

    Papermill passes ``-p RETRAIN no`` as the string "no", which plain ``bool()`` would call true.
    Anything else raises a ``ValueError`` naming ``name`` and the value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name}={value!r} is not a boolean: use true/false, yes/no, on/off or 1/0")


def params_dir() -> Path:
    root = project_root() or project_root(Path(__file__).parent)
    if root is None or not (root / "params").is_dir():
        raise FileNotFoundError("cannot find the params/ folder of the fgic project (run from inside the checkout)")
    return root / "params"


def check_profile(profile: str | None) -> str:
    """``profile`` or ``$FGIC_PROFILE`` or "default"; raises on an unknown name."""
    profile = profile or os.environ.get("FGIC_PROFILE") or "default"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES}")
    return profile


def resolve_profile(profile: str | None) -> str:
    """``profile`` or ``$FGIC_PROFILE`` or "default" (raises on an unknown name), made the active profile.

    Every notebook calls this once: from then on its figures of a non-default profile go to
    ``figures/<profile>/`` (``fgic.paths.figures_dir``), never over the committed default figures.
    """
    profile = check_profile(profile)
    paths.set_active_profile(profile)
    return profile


def _load(path: Path, profile: str) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get(profile) or {}, dict):
        raise ValueError(f"{path}: expected a mapping of profile name -> settings (e.g. 'smoke: {{...}}')")
    return dict(data.get(profile) or {})


def settings(
    notebook: str,
    profile: str | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    data_file: str | None = None,
    image_size: int | None = None,
    overrides: str | list[str] | dict | None = None,
) -> dict:
    """Merged settings of ``notebook`` (file stem, e.g. "01_acanet") under ``profile``.

    ``dataset`` (a registered name, e.g. "folder" or "csv"; default ``$FGIC_DATASET``) with ``data_root``,
    ``data_file`` and ``image_size`` (defaults from ``$FGIC_DATA_ROOT``, ``$FGIC_DATA_FILE``,
    ``$FGIC_IMAGE_SIZE``, else the profile's image size) selects your own data: ``S["data"]``.
    ``overrides`` (default ``$FGIC_SET``): see ``apply_overrides``; ``dataset=``, ``data_root=``,
    ``data_file=`` among them select your own data like the arguments of the same names.
    """
    profile = check_profile(profile)
    d = params_dir()
    out = _load(d / "profiles.yaml", profile)
    for k, v in _load(d / f"{notebook}.yaml", profile).items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    out["profile"] = profile
    over = parse_overrides(os.environ.get("FGIC_SET", "") if overrides is None else overrides)
    dataset = over.pop("dataset", None) or dataset
    data_root = over.pop("data_root", None) or data_root
    data_file = over.pop("data_file", None) or data_file
    apply_overrides(out, over)
    dataset = dataset or os.environ.get("FGIC_DATASET") or None
    if dataset:
        out["data"] = own_data(out, dataset, data_root, data_file, image_size)
    return out


_SPLIT = re.compile(r"[;,\n](?=\s*[A-Za-z_][\w.]*\s*=)")  # a separator followed by the next "key="


def parse_overrides(overrides: str | list[str] | dict | None) -> dict:
    """``{key: value}`` from ``"k=v;k2=v2"`` (``;``, ``,`` or newlines between items), a list of ``"k=v"``
    or a dict. Values are read as YAML: ``1`` is an int, ``[1, 2]`` a list, ``no`` false, ``cub`` a string."""
    if isinstance(overrides, dict):
        return dict(overrides)
    items = overrides or []
    if isinstance(items, str):
        items = _SPLIT.split(items)
    out = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"override {item!r} is not KEY=VALUE (e.g. epochs=1 or train.lr=0.01)")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as e:
            raise ValueError(f"override {item!r}: the value is not valid YAML ({e})") from None
    return out


def train_keys() -> set[str]:
    from dataclasses import fields

    from fgic.engine import TrainConfig

    return {f.name for f in fields(TrainConfig)}


def apply_overrides(S: dict, overrides: dict) -> dict:
    """Change settings ``S`` in place (and return it) by ``overrides``, ``{key: value}``:

    - ``a.b.c=value`` sets that nested key (``train.lr=0.01``, ``benchmark.images_per_class=20``);
    - a top-level key of ``S`` is replaced (``seeds=[0]``, ``image_size=64``, ``pretrained=false``);
    - a ``TrainConfig`` field (``epochs``, ``batch_size``, ``max_steps``, ``limit_train``, ``limit_eval``, ...)
      is set in every training config of the notebook (``train`` and ``*_train``, e.g. GHOLM's ``bench_train``).

    Anything else raises a ``ValueError`` naming the key and what is available.
    """
    tkeys = train_keys()
    for key, value in overrides.items():
        if "." in key:
            *path, last = key.split(".")
            d = S
            for part in path:
                if not isinstance(d.get(part, {}), dict):
                    raise ValueError(f"override {key}: {part!r} is not a mapping in these settings")
                d = d.setdefault(part, {})
            d[last] = value
        elif key in S:
            S[key] = value
        elif key in tkeys:
            targets = [k for k, v in S.items() if (k == "train" or k.endswith("_train")) and isinstance(v, dict)]
            if not targets:
                raise ValueError(f"override {key}: these settings have no training config ('train' or '*_train')")
            for k in targets:
                S[k] = {**S[k], key: value}
        else:
            raise ValueError(
                f"unknown override {key!r}: use a settings key {sorted(S)}, a TrainConfig field {sorted(tkeys)}, "
                "dataset / data_root / data_file, or a dotted path such as train.lr"
            )
    return S


def own_data(S: dict, dataset: str, root: str | None, file: str | None, image_size: int | None) -> dict:
    """``{"dataset", "data_kw", "image_size"}`` of a data set chosen in place of the benchmark."""
    from fgic.data import list_datasets

    if dataset not in list_datasets():
        raise ValueError(f"unknown data set {dataset!r} (FGIC_DATASET / dataset=); available: {list_datasets()}")
    root = root or os.environ.get("FGIC_DATA_ROOT") or None
    file = file or os.environ.get("FGIC_DATA_FILE") or None
    if dataset == "csv" and not file:
        raise ValueError("dataset 'csv' needs data_file= or $FGIC_DATA_FILE (the CSV / TSV table)")
    size = image_size or os.environ.get("FGIC_IMAGE_SIZE") or S.get("image_size") or S["benchmark"]["image_size"]
    data_kw = {
        **(S.get("data_kw") or {}),
        **({"root": str(root)} if root else {}),
        **({"file": str(file)} if file else {}),
    }
    return {"dataset": dataset, "data_kw": data_kw, "image_size": int(size)}


def data_source(S: dict) -> tuple[str, dict, int]:
    """(data set name, build_dataset kwargs, image size) a notebook's runs use: ``S["data"]`` or the benchmark."""
    if S.get("data"):
        return S["data"]["dataset"], dict(S["data"]["data_kw"]), S["data"]["image_size"]
    return "synthetic", dict(S["benchmark"]), S["benchmark"]["image_size"]
