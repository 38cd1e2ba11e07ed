"""Command line: ``python -m fgic run-notebooks | reproduce | runs | bench | list | lab | predict | export |
make-folder-tree``."""

from __future__ import annotations

import argparse
import sys
import time

# ``python -m fgic list <what>``: the registries printed as tables (name, paper, description, aliases)
REGISTRIES = {
    "models": ("fgic.models.registry", "MODELS"),
    "losses": ("fgic.losses.registry", "LOSSES"),
    "datasets": ("fgic.data.registry", "DATASETS"),
    "transforms": ("fgic.data.transforms", "PRESETS"),
    "attentions": ("fgic.nn.registry", "ATTENTIONS"),
    "study-modules": ("fgic.models.study", "STUDY_MODULES"),
}
LISTS = (*REGISTRIES, "benchmarks", "notebooks")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fgic", description="fgic: fine-grained classification study workspace")
    sub = ap.add_subparsers(dest="cmd", required=True)

    nb = sub.add_parser("run-notebooks", help="execute the numbered notebooks headlessly with papermill")
    nb.add_argument("names", nargs="*", help="notebook stems or prefixes (e.g. 00 01_acanet); default: all")
    nb.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    nb.add_argument(
        "--retrain", action="store_true", help="retrain even where a finished run with the same parameters exists"
    )
    nb.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    nb.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting in every notebook (epochs=1, max_steps=20, limit_train=64, train.lr=0.01, "
        "dataset=cub); repeatable; reaches the kernels as $FGIC_SET",
    )
    nb.add_argument("--dry-run", action="store_true", help="check the paper grids cheaply instead (see dry-run)")
    nb.add_argument("--allow-cpu", action="store_true", help="let the paper profile train on a CPU (slow)")
    nb.add_argument("--keep-going", action="store_true", help="a failing run does not stop the rest of its grid")
    nb.add_argument(
        "--per-notebook", action="store_true",
        help="each notebook trains its own runs (default: all grids first, in one queue, longest runs first)",
    )
    nb.add_argument(
        "--jobs", default="auto",
        help="notebooks executed at a time after the queue (default auto: 2 on a CPU-only machine, 1 with a GPU "
        "or in the paper profile)",
    )
    nb.add_argument(
        "--executor", default="local", choices=["local", "slurm", "submitit-local"], help="where runs train"
    )
    nb.add_argument("--slurm-partition", default=None, help="Slurm partition of the jobs (--executor slurm)")
    nb.add_argument("--slurm-gpus", type=int, default=None, help="GPUs per Slurm job (default 1)")
    nb.add_argument("--slurm-timeout-min", type=int, default=None, help="time limit per Slurm job in minutes")

    dr = sub.add_parser("dry-run", help="a few steps of every distinct spec of the paper grids (fgic.dryrun)")
    dr.add_argument("names", nargs="*", help="notebook stems or prefixes; default: all")
    dr.add_argument("--data", default="cub", help="registered data set used where a grid's own data set is absent")
    dr.add_argument("--data-root", default=None, help="its root (default: $FGIC_DATA)")
    dr.add_argument("--image-size", type=int, default=64, help="network input size of the dry run")
    dr.add_argument("--full-size", action="store_true", help="keep the paper's full network widths (GPU)")
    dr.add_argument("--every-pair", action="store_true", help="every model x loss pair, not each model and loss once")
    dr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    be = sub.add_parser("bench", help="run a benchmark and print its figures")
    be.add_argument("name", help="benchmark name (see `python -m fgic list`)")
    be.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    be.add_argument("--tiny", action="store_true", help="toy sizes: checks that it runs, figures mean nothing")
    be.add_argument("--peak-tflops", type=float, default=None, help="gpu: peak TFLOP/s for the MFU (default 989)")

    li = sub.add_parser("list", help="list models, losses, data sets, transforms, benchmarks and notebooks")
    li.add_argument("what", nargs="?", choices=LISTS, help="one table: name, paper, description, aliases")
    li.add_argument("pattern", nargs="?", default="", help="only names containing it (or matching a glob: '*_top')")

    pr = sub.add_parser("predict", help="top-k classes of images (files or folders) under a trained run")
    pr.add_argument("images", nargs="+", help="image files and / or folders (searched recursively)")
    pr.add_argument("--run", required=True, help="run id (under runs/ or $FGIC_RUNS) or run folder")
    pr.add_argument("-k", type=int, default=5, help="classes per image")
    pr.add_argument("--cam", default=None, help="folder for Grad-CAM overlays of the top class")
    pr.add_argument("--csv", default=None, help="write the table to this CSV file")
    pr.add_argument("--batch-size", type=int, default=32)
    pr.add_argument("--device", default="cpu")

    ex = sub.add_parser("export", help="export a run (re-parameterised, with its loss head) for deployment")
    ex.add_argument("--run", required=True, help="run id (under runs/ or $FGIC_RUNS) or run folder")
    ex.add_argument("--format", default="pt2", choices=["pt2", "torchscript"], help="torch.export or TorchScript")
    ex.add_argument("--out", default=None, help="output file (default: <run folder>/model.<format>)")

    mf = sub.add_parser("make-folder-tree", help="turn a CUB-layout root into a folder tree of links")
    mf.add_argument("src", help="root holding CUB_200_2011 (or that folder)")
    mf.add_argument("dst", help="destination: gets train/<class>/ and test/<class>/")
    mf.add_argument("--link", default="symlink", choices=["symlink", "hardlink", "copy"])

    rp = sub.add_parser("reproduce", help="rerun notebooks' grids into a fresh runs folder; compare conclusions")
    rp.add_argument("names", nargs="+", help="notebook stems or prefixes (e.g. 01 02_multi_attention)")
    rp.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    rp.add_argument("--runs", default=None, help="fresh runs folder (default runs-reproduce/<time stamp>)")
    rp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a setting of the rerun's grid (e.g. threads=2)")

    rs = sub.add_parser("runs", help="the records of runs/<group>/ and whether each matches the data here")
    rs.add_argument("--group", default="default", help="runs folder group (the profile's name)")
    rs.add_argument("--mismatched", action="store_true", help="only records that would be retrained here")

    sub.add_parser("lab", help="JupyterLab on notebooks/ with the workspace's defaults (widget state saved)")
    args, extra = ap.parse_known_args(argv)
    if extra and args.cmd != "lab":
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd == "lab":
        from fgic.lab import main as lab_main

        return lab_main(extra)

    if args.cmd == "run-notebooks":
        from fgic.notebooks import run_notebooks
        from fgic.profiles import parse_overrides

        try:
            parse_overrides(args.overrides)  # a malformed KEY=VALUE fails here, before any notebook starts
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.dry_run:
            from fgic.dryrun import main as dry_main

            args.data, args.data_root, args.image_size, args.full_size = "cub", None, 64, False
            return dry_main(args)
        env = {
            "FGIC_ALLOW_CPU": "1" if args.allow_cpu else None,
            "FGIC_KEEP_GOING": "1" if args.keep_going else None,
            "FGIC_EXECUTOR": None if args.executor == "local" else args.executor,
            "FGIC_SLURM_PARTITION": args.slurm_partition,
            "FGIC_SLURM_GPUS": args.slurm_gpus,
            "FGIC_SLURM_TIMEOUT_MIN": args.slurm_timeout_min,
        }
        t0 = time.perf_counter()
        results = run_notebooks(
            args.profile,
            args.names,
            retrain=args.retrain,
            timeout=args.timeout,
            overrides=args.overrides,
            env={k: str(v) for k, v in env.items() if v is not None},
            pretrain_runs=not args.per_notebook,
            jobs=args.jobs,
        )
        failed = [r for r in results if not r["ok"]]
        total = time.perf_counter() - t0  # the whole main job: the shared queue and every notebook
        print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed ({total:.0f} s, profile {args.profile})")
        for r in failed:
            print(f"  FAILED {r['name']}: {r['error']}\n    see {r['output']}")
        return 1 if failed else 0
    if args.cmd == "reproduce":
        from fgic.reproduce import reproduce, summary

        every = []
        for name in args.names:
            every += reproduce(name, args.profile, args.runs, overrides=args.overrides or None)
        if len(args.names) > 1:
            print(f"\nall {len(args.names)} notebooks:\n{summary(every)}")
        # exit status: contradictions and other changes; significance-only changes are printed, not failed
        return min(sum(r["kind"] in ("contradicts", "differs") for r in every), 100)
    if args.cmd == "runs":
        from fgic.runs import list_records

        df = list_records(args.group)
        if args.mismatched and len(df):
            df = df[~df["matches"]]
        print(df.to_string(index=False) if len(df) else f"no records in runs/{args.group}")
        return 0
    if args.cmd == "dry-run":
        from fgic.dryrun import main as dry_main

        return dry_main(args)
    if args.cmd == "bench":
        from fgic.bench import run_benchmark

        if args.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                print("error: --device cuda but no CUDA device is available", file=sys.stderr)
                return 2
        kw = {"peak_tflops": args.peak_tflops} if args.peak_tflops is not None else {}
        run_benchmark(args.name, args.device, tiny=args.tiny, **kw)
        return 0
    if args.cmd == "list" and args.what in REGISTRIES:
        import importlib

        module, attr = REGISTRIES[args.what]
        reg = getattr(importlib.import_module(module), attr)
        if not reg.list(args.pattern):
            print(f"no {reg.kind} matches {args.pattern!r}", file=sys.stderr)
            return 1
        print(reg.table(args.pattern))
        return 0
    if args.cmd == "list":
        from fgic.bench import list_benchmarks
        from fgic.data import list_datasets
        from fgic.data.transforms import list_presets
        from fgic.losses import list_losses
        from fgic.models import list_models
        from fgic.models.study import list_study_modules
        from fgic.nn.registry import list_attentions
        from fgic.notebooks import find_notebooks

        lists = {
            "models": lambda: list_models(args.pattern),
            "losses": lambda: list_losses(args.pattern),
            "datasets": lambda: list_datasets(args.pattern),
            "transforms": lambda: list_presets(args.pattern),
            "attentions": lambda: list_attentions(args.pattern),
            "study-modules": lambda: list_study_modules(args.pattern),
            "benchmarks": lambda: [n for n in list_benchmarks() if args.pattern in n],
            "notebooks": lambda: [p.stem for p in find_notebooks() if args.pattern in p.stem],
        }
        for what in [args.what] if args.what else lists:
            print(f"{what + ':':<11}", ", ".join(lists[what]()))
        if not args.what:
            print("(python -m fgic list models|losses|datasets|transforms [PATTERN]: one table with descriptions)")
        return 0
    if args.cmd == "make-folder-tree":
        from fgic.data.tools import cub_to_folder_tree

        counts = cub_to_folder_tree(args.src, args.dst, args.link)
        print(f"wrote {args.dst}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
        return 0
    if args.cmd == "export":
        from fgic.export import export
        from fgic.predict import resolve_record

        try:
            rec = resolve_record(args.run)
            path = export(rec, args.out or rec.dir / f"model.{args.format}", args.format)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {path}")
        return 0
    if args.cmd == "predict":
        from fgic.predict import predict

        try:
            df = predict(args.run, args.images, args.k, args.cam, args.csv, args.batch_size, args.device)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(df.to_string(index=False))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
