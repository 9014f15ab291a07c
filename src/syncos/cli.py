"""The ``syncos`` command line: argument parsing, progress and exit codes, nothing else.

Arguments are parsed before anything heavy is imported: ``--help``, ``--version`` and usage
errors answer without loading torch; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from syncos import __version__
from syncos.errors import DistributedError, UserError

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
EXIT_PEER = 3  # under torchrun: a peer rank died or hung, see syncos.distributed


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as for every other user mistake
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="syncos", description="Long multi-event videos with Synchronized Coupled Sampling.")
    p.add_argument("--version", action="version", version=f"syncos {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, help="one of:")

    g = sub.add_parser("generate", help="sample a scenario and write OUTDIR/video.mp4 and run.json")
    _scenario_arguments(g)
    g.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    g.add_argument("--gif", action="store_true", help="also write video.gif")
    g.add_argument(
        "--resume", action="store_true", help="continue the interrupted run whose checkpoint is in OUTDIR"
    )
    g.add_argument(
        "--checkpoint-minutes",
        type=_positive_number,
        default=None,
        metavar="M",
        help="write OUTDIR/checkpoint.safetensors every M minutes of sampling (default 5; also at the end "
        "of a stage, on Ctrl-C, SIGTERM and errors)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=_positive,
        default=None,
        metavar="N",
        help="also write it every N steps",
    )
    g.add_argument("--save-latent", action="store_true", help="also write the latent to latent.safetensors")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    g.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="under torchrun: how long a rank waits for its peers before giving up "
        "(default $SYNCOS_DIST_TIMEOUT or 600)",
    )

    pl = sub.add_parser("plan", help="show the chunk layout, network evaluations and (--time) the cost")
    _scenario_arguments(pl)
    pl.add_argument("--time", action="store_true", help="time a few forward passes to estimate wall time")
    pl.add_argument("--json", action="store_true", help="print JSON instead of tables")

    u = sub.add_parser("ui", help="the browser studio (needs the ui extra: pip install 'syncos[ui]')")
    u.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    u.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    u.add_argument("--scenario", help="scenario file to open (default: examples' ball story on toyworld)")
    u.add_argument(
        "--output",
        metavar="DIR",
        help="keep the videos in DIR (default: a temporary folder, removed when the studio stops)",
    )
    u.add_argument(
        "--auth", metavar="USER:PASS", help="ask for this user and password (needed beyond 127.0.0.1)"
    )
    u.add_argument(
        "--no-auth", action="store_true", help="serve beyond 127.0.0.1 without a password (a trusted network)"
    )

    m = sub.add_parser("metrics", help="print the toyworld metrics of a video")
    m.add_argument("video", help="video file (MP4 or GIF) made from the scenario")
    m.add_argument(
        "--scenario", help="the scenario the video was made from (default: the run.json beside the video)"
    )
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub.add_parser("vocab", help="list the words toyworld understands")

    b = sub.add_parser("bench", help="run a suite of scenarios x methods x seeds; write results and a report")
    b.add_argument("suite", help="folder of scenario files (with an optional suite.yaml)")
    b.add_argument("-o", "--output", required=True, help="output folder (rerunning resumes it)")
    b.add_argument("--methods", nargs="+", help="sampler names or the suite's variants")
    b.add_argument("--seeds", type=_positive, metavar="N", help="seeds 0..N-1 per scenario and method")
    b.add_argument("--scenarios", nargs="+", help="only these scenarios (file names without suffix)")
    b.add_argument("--model", help="run every row on this model, not the scenarios' (e.g. toyworld-learned)")
    b.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of every scenario after the suite's overrides, e.g. "
        "--set model_options.prior.lighting.day=0.9 --set sampler.guidance_scale=6",
    )
    b.add_argument("--features", help="folder with clip/ and dino/ weights for the weight-based metrics")
    b.add_argument("--report-only", action="store_true", help="rewrite the report from results.csv")
    b.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="under torchrun: how long a rank waits for its peers in a chunk-parallel row (default 600)",
    )
    return p


def _scenario_arguments(p: argparse.ArgumentParser) -> None:
    """A scenario file and the options that override it (generate and plan take the same)."""
    p.add_argument("scenario", help="scenario file (YAML or JSON)")
    p.add_argument(
        "--method", help="sampler: extend, independent, codenoise, fifo or syncos (sets sampler.method)"
    )
    p.add_argument("--model", help="'toyworld', a diffusers model id or a local diffusers folder")
    p.add_argument("--seed", type=int, help="random seed, 0 <= N < 2**63 (sets seed)")
    p.add_argument("--steps", type=int, help="denoising steps, 1-1000 (sets sampler.steps)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set sampler.lr=0.3 --set height=480 --set events[0].frames=30",
    )


def _overrides(args: argparse.Namespace) -> list[str]:
    out = []
    for key, value in (
        ("sampler.method", args.method),
        ("model", args.model),
        ("seed", args.seed),
        ("sampler.steps", args.steps),
    ):
        if value is not None:
            out.append(f"{key}={value}")
    return out + list(args.set)


class _Progress:
    """A tqdm bar on a terminal; silent otherwise."""

    def __init__(self, enabled: bool, label: str):
        self.bar = None
        self.enabled, self.label = enabled, label

    def __call__(self, step) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=step.total,
                initial=step.index,
                desc=self.label,
                unit="step",
                file=sys.stderr,
                leave=False,
            )
        self.bar.update(1)
        self.bar.set_postfix(t=f"{step.timestep:.0f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_generate(args: argparse.Namespace) -> int:
    from syncos import distributed

    with distributed.launched(args.dist_timeout):  # torchrun: split the chunks over the ranks
        return _generate(args, main=distributed.is_main())


def _generate(args: argparse.Namespace, main: bool) -> int:
    """Every rank samples; only rank 0 (``main``) shows progress and writes outputs."""
    from syncos import checkpoint
    from syncos.api import generate, prepare, save
    from syncos.io import check_outdir, write_tensors
    from syncos.planning import plan_run
    from syncos.scenario import load_scenario

    start = time.perf_counter()
    scenario = load_scenario(_scenario_file(args.scenario), _overrides(args))
    out = check_outdir(args.output) if main else None  # fail before the long work, not after
    store = _checkpoint(args, scenario, main)  # a resume that cannot match fails before the model loads
    progress = _Progress(main and sys.stderr.isatty() and not args.quiet, scenario.method)
    try:
        scenario, backend, plan = prepare(scenario)
        said = plan_run(scenario, backend, plan).warnings if main and not args.quiet else []
        for line in said:  # before the run: the user may stop it and change the scenario
            print(f"note: {line}", flush=True)
        with store.on_signals():  # Ctrl-C / SIGTERM: the checkpoint is kept, no video begun
            gen = generate(scenario, backend=backend, callback=progress, checkpoint=store)
            progress.close()
            if out is None:
                return 0
            record = save(gen, out, gif=args.gif, wall_seconds=time.perf_counter() - start)
    except checkpoint.Refused:  # this run cannot resume it: kept for a run that can, or to start over
        raise
    except UserError:  # found late (e.g. by the metrics): the scenario must change, so must the run
        store.remove()
        raise
    except KeyboardInterrupt:
        if main and store.written is not None:
            progress.close()
            print(
                f"syncos: interrupted; {checkpoint.progress(store.written, store.total)} is saved in "
                f"{store.path}: rerun with --resume to continue",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        raise
    finally:
        progress.close()
    if args.save_latent:
        write_tensors({"latent": gen.latent}, out / "latent.safetensors")
    store.remove()
    if not args.quiet:
        print(f"wrote {out / 'video.mp4'} ({_video_summary(record)})")
        if record.get("metrics"):
            _print_metrics(record["metrics"], f"toyworld metrics of the {record['metrics_from']}")
        for note in gen.notes:
            if note not in said:
                print(f"note: {note}")
    return 0


def _video_summary(record: dict) -> str:
    """E.g. "72 frames, 9.0 s video, sampled in 40.5 s": the video's length and the run's, told apart."""
    seconds = record["frames"] / record["fps"]
    return f"{record['frames']} frames, {seconds:.1f} s video, sampled in {record['seconds']['total']:.1f} s"


def _scenario_file(path: str) -> str:
    """``path`` if it can be a scenario; a suite (its folder or its suite.yaml) is sent to ``bench``."""
    from pathlib import Path

    from syncos.bench.suite import SUITE_FILE

    p = Path(path)
    if p.is_dir() or p.name == SUITE_FILE:
        folder = p if p.is_dir() else p.parent
        raise UserError(
            f"{path!r} is a benchmark suite, not a scenario file: run it with `syncos bench {folder} "
            "-o OUTDIR`, or give one of its scenario files"
        )
    return path


def _checkpoint(args: argparse.Namespace, scenario, main: bool):
    """The run's checkpoint in OUTDIR; with --resume, loaded (and checked) on every rank."""
    from syncos.checkpoint import DEFAULT_MINUTES, Checkpoint, fingerprint, progress

    minutes = args.checkpoint_minutes or DEFAULT_MINUTES
    store = Checkpoint(args.output, fingerprint(scenario.to_dict()), args.checkpoint_every, minutes)
    say = (lambda line: print(f"syncos: {line}", file=sys.stderr)) if main and not args.quiet else None
    if args.resume:
        saved = store.load()
        if say and saved is None:
            say(f"no checkpoint in {args.output!r}; starting from the first step")
        elif say and saved is not None:
            say(f"resuming after {progress(saved.step, saved.total)}")
    elif say and store.exists():
        say(f"{args.output!r}: an unfinished run's checkpoint will be replaced (--resume resumes it)")
    return store


def cmd_plan(args: argparse.Namespace) -> int:
    from syncos.planning import plan_scenario

    plan = plan_scenario(_scenario_file(args.scenario), overrides=_overrides(args), timed=args.time)
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.format())
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from syncos.ui import launch
    from syncos.ui.access import check_exposure, parse_auth

    auth = parse_auth(args.auth) if args.auth is not None else None
    check_exposure(args.host, auth, args.no_auth)  # before Gradio loads: a refusal is immediate
    try:
        launch(host=args.host, port=args.port, scenario=args.scenario, root=args.output, auth=auth)
    except ImportError as e:
        raise UserError(f"the studio needs the ui extra (pip install 'syncos[ui]'): {e}") from None
    return 0


def _print_metrics(metrics: dict[str, float], source: str) -> None:
    """One line per metric with what it measures, so a newcomer can tell a good video from a bad one."""
    from syncos.backends.toyworld.metrics import MEANINGS

    print(f"{source} (scores in [0, 1], higher is better; counts and rates, 0 is best; docs/toyworld.md):")
    width = max(map(len, metrics))
    for k, v in metrics.items():
        shown = str(v) if isinstance(v, int) else f"{v:.3f}"  # counts as counts
        print(f"  {k:<{width}}  {shown:>5}  {MEANINGS.get(k, '')}".rstrip())


def _run_scenario(video: str) -> dict:
    """The scenario recorded in the run.json that `syncos generate` wrote beside the video."""
    path = Path(video).parent / "run.json"
    if not path.is_file():
        raise UserError(f"no --scenario given and no run.json beside {video}: pass --scenario FILE")
    try:
        scenario = json.loads(path.read_text(encoding="utf-8"))["scenario"]
    except (ValueError, KeyError, TypeError):
        scenario = None
    if not isinstance(scenario, dict):
        raise UserError(f"{path} records no scenario: pass --scenario FILE")
    return scenario


def cmd_metrics(args: argparse.Namespace) -> int:
    from syncos.api import METRICS_FROM_FILE, make_plan, video_events
    from syncos.backends import load_backend
    from syncos.io import read_video
    from syncos.scenario import load_scenario

    scenario = load_scenario(args.scenario or _run_scenario(args.video))
    backend = load_backend(scenario.model, **scenario.model_settings())
    evaluate = backend.spec.evaluate
    if evaluate is None:
        raise UserError(
            f"model {scenario.model!r} has no built-in metrics; only toyworld videos can be scored"
        )
    frames, _ = read_video(args.video)
    plan = make_plan(scenario, backend)
    if len(frames) != plan.video_frames:
        raise UserError(f"video has {len(frames)} frames but the scenario makes {plan.video_frames}")
    from syncos.backends.toyworld.metrics import evaluate_with_defects  # the backend's, and where

    try:
        metrics, found = evaluate_with_defects(frames, scenario.global_prompt, video_events(plan, scenario))
    except ValueError as e:  # e.g. frames of a size toyworld does not render
        raise UserError(f"video {args.video!r} cannot be scored: {e}") from None
    where = {"cuts": list(found.cuts), "repeats": list(found.repeats), "blank_frames": list(found.blank)}
    if args.json:
        record = {
            "video": args.video,
            "metrics_from": METRICS_FROM_FILE,
            "metrics": metrics,
            "defects": where,
        }
        print(json.dumps(record, indent=2))
    else:
        _print_metrics(metrics, f"toyworld metrics of {args.video}: {METRICS_FROM_FILE}")
        if found.cuts:
            print(f"  cuts at frames {', '.join(map(str, found.cuts))}")
        for line in found.repeats:
            print(f"  repeat: {line}")
        if found.blank:
            print(f"  blank frames {', '.join(map(str, found.blank))}")
    return 0


def cmd_vocab(args: argparse.Namespace) -> int:
    from syncos.backends.toyworld import vocabulary

    for category, words in vocabulary().items():
        print(f"{category}: {', '.join(words)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from syncos import distributed

    with distributed.launched(args.dist_timeout):  # torchrun: ranks take whole rows (docs/distributed.md)
        return _bench(args)


def _bench(args: argparse.Namespace) -> int:
    from syncos import distributed
    from syncos.bench import load_suite, run_suite, write_report

    suite = load_suite(args.suite)
    extra = ([f"model={args.model}"] if args.model else []) + list(args.set)
    if extra:  # after the suite's own overrides, as generate's --model and --set come after the file
        from syncos.scenario import apply_overrides

        apply_overrides({}, extra)  # a malformed KEY=VALUE fails here, in one line, not in every row
        suite = dataclasses.replace(suite, overrides=(*suite.overrides, *extra))
    methods = args.methods or list(suite.methods)
    if not args.report_only:
        scorer = None
        if args.features:
            from syncos.bench.feature_metrics import FeatureScorer

            scorer = FeatureScorer.from_folder(args.features)
        run_suite(
            suite,
            args.output,
            methods=methods,
            seeds=args.seeds,
            scenarios=args.scenarios,
            scorer=scorer,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    if not distributed.is_main():
        return 0
    summary = write_report(
        args.output,
        methods=methods,
        baseline=suite.baseline,
        contact=suite.contact_sheet,
        title=f"syncos bench {suite.folder.name}",
        description=suite.description,
    )
    print(summary)
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "plan": cmd_plan,
    "ui": cmd_ui,
    "metrics": cmd_metrics,
    "vocab": cmd_vocab,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `syncos`: what it can do, as a usage error
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"syncos: error: {' '.join(str(e).split())}", file=sys.stderr)  # always one line
        return EXIT_USAGE
    except DistributedError as e:
        print(f"syncos: error: {e}; no output was written", file=sys.stderr)
        return EXIT_PEER
    except KeyboardInterrupt:
        print("syncos: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
