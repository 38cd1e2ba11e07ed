"""Profiles: ``smoke`` (seconds per notebook, CI and nbval), ``default`` (the main job on the embedded
benchmark, all notebooks within about 30 min on a 2-core CPU) and ``paper`` (real data, the paper's
hyper-parameters, a GPU).

Settings live in ``params/``: ``profiles.yaml`` holds what every notebook of a profile shares (the
benchmark's knobs), ``<notebook>.yaml`` what one notebook needs, each keyed by profile.
``settings("01_acanet", "smoke")`` merges the two (the notebook's keys win) and returns the notebook's typed
settings, a dataclass of ``fgic.settings`` (here ``ACANet``), checked as it is built: an unknown key, a missing
one or a wrong type raises ``fgic.settings.SettingsError`` naming the file (or override), profile, key and type.

Your own data in place of the embedded benchmark: ``settings(..., dataset="folder", data_root=PATH)``
(or ``$FGIC_DATASET`` / ``$FGIC_DATA_ROOT``, plus ``data_file=`` / ``$FGIC_DATA_FILE`` for ``"csv"`` and
``image_size=`` / ``$FGIC_IMAGE_SIZE``) sets ``S.data``, an ``OwnData(dataset, data_kw, image_size)``;
``data_source(S)`` gives what a run should train on: that, or the benchmark.

Overrides: ``settings(..., overrides=["epochs=1", "max_steps=20"])`` or ``$FGIC_SET="epochs=1;max_steps=20"``
(what ``python -m fgic run-notebooks --set epochs=1 --set max_steps=20`` passes to every notebook's kernel)
change settings after the merge, before the types are checked; ``apply_overrides`` says which keys do what.
A notebook's ``OVERRIDES`` parameter reaches ``settings`` through ``fgic.session`` (``fgic.sessions``).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import yaml

from fgic import paths
from fgic.paths import project_root
from fgic.settings import OwnData, Settings, SettingsError, build, is_train_key, settings_class, yaml_keys

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
        raise SettingsError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get(profile) or {}, dict):
        raise SettingsError(f"{path}: expected a mapping of profile name -> settings (e.g. 'smoke: {{...}}')")
    return dict(data.get(profile) or {})


def settings(
    notebook: str,
    profile: str | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    data_file: str | None = None,
    image_size: int | None = None,
    overrides: str | list[str] | dict | None = None,
) -> Settings:
    """Typed settings of ``notebook`` (file stem, e.g. "01_acanet") under ``profile``: an instance of its class in
    ``fgic.settings.NOTEBOOKS`` (e.g. ``fgic.settings.ACANet``), checked as it is built (``SettingsError``).

    ``dataset`` (a registered name, e.g. "folder" or "csv"; default ``$FGIC_DATASET``) with ``data_root``,
    ``data_file`` and ``image_size`` (defaults from ``$FGIC_DATA_ROOT``, ``$FGIC_DATA_FILE``,
    ``$FGIC_IMAGE_SIZE``, else the profile's image size) selects your own data: ``S.data``.
    ``overrides`` (default ``$FGIC_SET``): see ``apply_overrides``; ``dataset=``, ``data_root=``,
    ``data_file=`` among them select your own data like the arguments of the same names.
    """
    profile = check_profile(profile)
    cls = settings_class(notebook)
    d = params_dir()
    sources = [(f"params/{name}", _load(d / name, profile)) for name in ("profiles.yaml", f"{notebook}.yaml")]
    out = dict(sources[0][1])
    for k, v in sources[1][1].items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    train_defaults = out.pop("train_defaults", None) or {}  # profiles.yaml: TrainConfig fields of every run
    for k, v in list(out.items()):
        if is_train_key(k) and isinstance(v, dict):
            out[k] = {**train_defaults, **v}
    over = parse_overrides(os.environ.get("FGIC_SET", "") if overrides is None else overrides)
    dataset = over.pop("dataset", None) or dataset
    data_root = over.pop("data_root", None) or data_root
    data_file = over.pop("data_file", None) or data_file
    applied: dict[tuple, str] = {}
    apply_overrides(out, over, keys=yaml_keys(cls), applied=applied)

    def where(path: tuple) -> str:
        path = tuple(re.sub(r"\[\d+\]$", "", str(p)) for p in path)
        for n in range(len(path), 0, -1):
            if path[:n] in applied:
                return f"override {applied[path[:n]]} ({notebook} [{profile}])"
        label = next((lab for lab, src in reversed(sources) if _has(src, path)), None)
        below = next((said for p, said in applied.items() if p[: len(path)] == path), None)
        if label is None and below:  # a key only an override brought in (foo.bar=1: foo)
            return f"override {below} ({notebook} [{profile}])"
        return f"{label or sources[1][0]} [{profile}]"

    S = build(cls, out, where, {"notebook": notebook, "profile": profile})
    dataset = dataset or os.environ.get("FGIC_DATASET") or None
    if dataset:
        S.data = own_data(S, dataset, data_root, data_file, image_size)
    return S


def _has(d: dict, path: tuple) -> bool:
    for part in path:
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return True


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


def apply_overrides(S: dict, overrides: dict, keys=None, applied: dict | None = None) -> dict:
    """Change the merged settings dict ``S`` in place (and return it) by ``overrides``, ``{key: value}``:

    - ``a.b.c=value`` sets that nested key (``train.lr=0.01``, ``benchmark.images_per_class=20``);
    - a top-level key (one of ``keys``, the notebook's settings fields; default: the keys of ``S``) is replaced
      (``seeds=[0]``, ``image_size=64``, ``pretrained=false``);
    - a ``TrainConfig`` field (``epochs``, ``batch_size``, ``max_steps``, ``limit_train``, ``limit_eval``, ...)
      is set in every training config of the notebook (``train`` and ``*_train``, e.g. GHOLM's ``bench_train``).

    Anything else raises a ``SettingsError`` naming the key and what is available. The values' types are checked
    when the settings are built (``fgic.settings.build``); ``applied`` (if given) receives ``{key path: "k=v"}``
    of every change, so that an error there names the override.
    """
    tkeys = train_keys()
    keys = list(S) if keys is None else list(keys)
    applied = {} if applied is None else applied
    for key, value in overrides.items():
        said = f"{key}={value!r}"
        if "." in key:
            *path, last = key.split(".")
            d = S
            for part in path:
                if not isinstance(d.get(part, {}), dict):
                    raise SettingsError(f"override {key}: {part!r} is not a mapping in these settings")
                d = d.setdefault(part, {})
            d[last] = value
            applied[tuple(key.split("."))] = said
        elif key in keys:
            S[key] = value
            applied[(key,)] = said
        elif key in tkeys:
            targets = [k for k, v in S.items() if is_train_key(k) and isinstance(v, dict)]
            if not targets:
                raise SettingsError(f"override {key}: these settings have no training config ('train' or '*_train')")
            for k in targets:
                S[k] = {**S[k], key: value}
                applied[(k, key)] = said
        else:
            close = difflib.get_close_matches(key, [*keys, *tkeys, "dataset", "data_root", "data_file"], n=1)
            raise SettingsError(
                f"unknown override {key!r}: " + (f"did you mean {close[0]!r}? " if close else "")
                + f"use a settings key {sorted(keys)}, a TrainConfig field {sorted(tkeys)}, "
                "dataset / data_root / data_file, or a dotted path such as train.lr"
            )
    return S


def own_data(S: Settings, dataset: str, root: str | None, file: str | None, image_size: int | None) -> OwnData:
    """``S.data``: a data set chosen in place of the benchmark (its name, build_dataset options, image size)."""
    from fgic.data import list_datasets

    if dataset not in list_datasets():
        raise ValueError(f"unknown data set {dataset!r} (FGIC_DATASET / dataset=); available: {list_datasets()}")
    root = root or os.environ.get("FGIC_DATA_ROOT") or None
    file = file or os.environ.get("FGIC_DATA_FILE") or None
    if dataset == "csv" and not file:
        raise ValueError("dataset 'csv' needs data_file= or $FGIC_DATA_FILE (the CSV / TSV table)")
    size = image_size or os.environ.get("FGIC_IMAGE_SIZE") or S.image_size or S.benchmark.image_size
    data_kw = {
        **S.data_kw,
        **({"root": str(root)} if root else {}),
        **({"file": str(file)} if file else {}),
    }
    return OwnData(dataset=dataset, data_kw=data_kw, image_size=int(size))


def data_source(S: Settings) -> tuple[str, dict, int]:
    """(data set name, build_dataset kwargs, image size) a notebook's runs use: ``S.data`` or the benchmark."""
    if S.data is not None:
        return S.data.dataset, dict(S.data.data_kw), S.data.image_size
    return "synthetic", S.benchmark.kw(), S.benchmark.image_size
