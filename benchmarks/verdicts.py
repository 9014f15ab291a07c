"""Every verdict of docs/syncos.md, re-tried on another judge (issue 17, section 3).

A *judge* is the model that scores the samplers: toyworld's exact posterior with its uniform prior
(today's rows), the same exact model with a peaked prior (day 0.9 / night 0.1, the prior the
learned model was trained under, docs/learned.md), and `toyworld-learned`. `run` fills one
judge's rows with `syncos bench` (the suites as written, `--model` / `--set` for the judge);
`table` reads every judge's rows and decides each verdict by a paired 95% interval over scenarios.

    OMP_NUM_THREADS=1 python benchmarks/verdicts.py run exact-peaked     # ~30 min of one core
    OMP_NUM_THREADS=1 python benchmarks/verdicts.py run learned --dry-run  # what it would run, NFE
    python benchmarks/verdicts.py table [--docs docs/syncos.md]

The sync window "where the judge decides" is `--decided T`: the timestep (flow scale, 0..1000, as
docs/learned.md's calibration measures it) by which that judge has decided colour and scene / the
subject. It becomes a log-SNR window, `sync_until = 2 log((1000 - T) / T)`, so it selects the
same noise levels on toyworld's VP schedule and on the learned model's flow schedule.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from syncos.bench.report import interval
from syncos.bench.table import read_rows

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "benchmarks" / "suites"
RESULTS = ROOT / "benchmarks" / "results"
PEAKED = "model_options.prior.lighting={day: 0.9, night: 0.1}"


@dataclass(frozen=True)
class Judge:
    name: str
    label: str
    bench_args: tuple[str, ...]  # what `syncos bench` adds to every row
    decided: float  # calibration: the flow timestep by which this judge has decided (docs/learned.md)
    folder: Path  # where `run` writes
    today: bool = False  # the verdicts' own judge: its rows are today's; `run` adds only the missing ones


JUDGES = {
    "exact-uniform": Judge(
        "exact-uniform", "exact, uniform prior (today)", (), 900.0, RESULTS / "verdicts-exact-uniform", True
    ),
    "exact-peaked": Judge(
        "exact-peaked", "exact, prior day 0.9", ("--set", PEAKED), 900.0, RESULTS / "verdicts-exact-peaked"
    ),
    "learned": Judge(
        "learned", "toyworld-learned", ("--model", "toyworld-learned"), 660.0, RESULTS / "verdicts-learned"
    ),
}
# the learned model's weights change under its name: rows of other weights go to their own folder
# (`run learned --folder ...`) and into the table as a column of their own
EARLIER = {
    "learned-step3500": dataclasses.replace(
        JUDGES["learned"], name="learned-step3500", label="toyworld-learned, step-3500 weights",
        folder=RESULTS / "verdicts-learned-step3500", decided=580.0,  # that model's calibration
    ),
}  # fmt: skip


def window_until(decided: float) -> float:
    """The log-SNR at flow timestep ``decided``: the window's end, rounded as a method name shows it."""
    s = decided / 1000.0
    return round(2 * math.log((1 - s) / s), 2)


def window_methods(decided: float) -> tuple[str, str]:
    """SynCoS with the window ending where the judge has decided, and its re-noise control."""
    w = f"syncos+sync_until={window_until(decided)}"
    return w, f"{w}+iterations=0"


CFG6 = "sampler.guidance_scale=6"  # as today's heldout-cfg6.csv (syncos.md, "With guidance")
BAND = "paper-renoise+t_min=300"  # the middle re-noise band (docs/open-questions.md Q4: log-SNR -0.82)
COMMON = ("independent", "codenoise", "codenoise+noise=rescheduled", "fifo", "paper", "paper-renoise", BAND)
CFG_METHODS = (
    "independent",
    "independent+noise=rescheduled",
    "codenoise",
    "codenoise+noise=rescheduled",
    "fifo",
)


@dataclass(frozen=True)
class Run:
    sub: str  # the rows' folder under the judge's
    suite: str
    methods: tuple[str, ...] = ()  # () = the suite's own
    sets: tuple[str, ...] = ()  # `syncos bench --set`, after the judge's


def runs(judge: Judge) -> list[Run]:
    """One judge's `syncos bench` calls, cheapest first.

    For today's judge only what today's rows lack: the window rows, the band on the held-out
    scenarios, and co-denoising again (it must equal today's rows: the same machinery)."""
    common = (*COMMON, *window_methods(judge.decided))
    if judge.today:
        extra = ("codenoise", *window_methods(judge.decided))
        return [Run("heldout", "toyworld-heldout", (*extra, BAND)), Run("comparison", "toyworld", extra)]
    return [
        Run("heldout", "toyworld-heldout", common),
        Run("ablation", "toyworld-ablation"),  # the suite's own methods (full = paper, stride 4)
        Run("comparison", "toyworld", common),
        Run("heldout-cfg6", "toyworld-heldout", CFG_METHODS, (CFG6,)),
    ]


def with_decided(judge: Judge, decided: float | None) -> Judge:
    return dataclasses.replace(judge, decided=decided) if decided else judge


def chosen(args: argparse.Namespace) -> tuple[Judge, list[Run]]:
    judge = with_decided(JUDGES[args.judge], args.decided)
    if args.folder:
        judge = dataclasses.replace(judge, folder=Path(args.folder))
    print(f"{judge.name}: decided by t = {judge.decided:g} -> sync_until = {window_until(judge.decided)}")
    return judge, [r for r in runs(judge) if not args.only or r.sub in args.only]


def cmd_run(args: argparse.Namespace) -> int:
    from syncos.cli import main as syncos

    judge, todo = chosen(args)
    for r in todo:
        argv = ["bench", str(SUITES / r.suite), "-o", str(judge.folder / r.sub)]
        argv += [*(["--methods", *r.methods] if r.methods else []), *judge.bench_args]
        argv += [a for s in r.sets for a in ("--set", s)]
        print("syncos " + " ".join(argv), flush=True)
        if not args.dry_run and syncos(argv) != 0:
            return 1
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    """Network evaluations of a judge's runs, in closed form (`syncos plan`'s), and the hours they
    take at a measured rate of seconds per evaluation."""
    from syncos.api import load_backend
    from syncos.bench import load_suite
    from syncos.planning import plan_scenario
    from syncos.scenario import load_scenario

    judge, todo = chosen(args)
    pairs = zip(judge.bench_args[::2], judge.bench_args[1::2], strict=True)
    sets = [f"model={v}" if flag == "--model" else v for flag, v in pairs]  # as `syncos bench` applies them
    backends: dict[str, object] = {}
    rate1, rate2 = args.seconds_per_nfe, args.stage2_seconds_per_nfe or args.seconds_per_nfe
    print(f"| rows | runs | NFE (of which CSD) | hours at {rate1} s / NFE, {rate2} in CSD |")
    print("|---|---|---|---|")
    total = [0, 0]
    for r in todo:
        suite = load_suite(SUITES / r.suite)
        suite = dataclasses.replace(suite, overrides=(*suite.overrides, *sets, *r.sets))
        nfe = [0, 0]  # all, stage 2
        for scenario in suite.scenarios:
            for method in r.methods or suite.methods:
                sc = load_scenario(suite.resolve(scenario, method, 0))  # NFE does not depend on the seed
                key = repr((sc.model, sc.model_settings()))
                if key not in backends:
                    backends[key] = load_backend(sc.model, **sc.model_settings())
                counts = plan_scenario(sc, backend=backends[key]).nfe  # type: ignore[arg-type]
                nfe[0] += sum(counts.values()) * suite.seeds
                nfe[1] += counts.get("stage2", 0) * suite.seeds
        runs_n = len(suite.scenarios) * len(r.methods or suite.methods) * suite.seeds
        hours = ((nfe[0] - nfe[1]) * rate1 + nfe[1] * rate2) / 3600
        print(f"| {r.sub} | {runs_n} | {nfe[0]} ({nfe[1]}) | {hours:.2f} |")
        total = [total[0] + nfe[0], total[1] + nfe[1]]
    hours = ((total[0] - total[1]) * rate1 + total[1] * rate2) / 3600
    print(f"| all | | {total[0]} ({total[1]}) | {hours:.2f} |")
    return 0


# ---------------------------------------------------------------------------------------------
# the verdicts


@dataclass(frozen=True)
class Verdict:
    """``a - b`` on ``metrics``, paired by scenario, on the rows of ``source``; ``sign`` is the
    direction the verdict claims (+1 a better, -1 a worse, 0: no gain, i.e. not resolved positive)."""

    claim: str
    source: str  # comparison | ablation | heldout | heldout-cfg6
    a: str
    b: str
    metrics: tuple[str, ...]
    sign: int
    meaning: str


SC, BC = "subject_consistency", "background_consistency"
VERDICTS = (
    Verdict("CSD earns nothing", "comparison", "paper", "paper-renoise", (SC, BC), 0,
            "SynCoS (paper preset) − its re-noise control; holds unless a gain is resolved"),
    Verdict("FIFO leads", "comparison", "fifo", "codenoise", (SC, BC), +1, "FIFO − co-denoising"),
    Verdict("independent tiles lead under CFG", "heldout-cfg6", "independent+noise=rescheduled", "fifo",
            (SC, BC), +1, "independent tiles + rescheduled noise − FIFO, CFG 6 (held-out)"),
    Verdict("rescheduled noise helps", "comparison", "codenoise+noise=rescheduled", "codenoise", (SC, BC), +1,
            "co-denoising + rescheduled noise − co-denoising"),
    Verdict("the middle re-noise band helps", "comparison", BAND, "codenoise", (SC, BC), +1,
            "re-noise only, t > 300 (log-SNR -0.82) − co-denoising"),
    Verdict("stage 2 alone collapses", "ablation", "stage2-only", "full", (BC, "clean"), -1,
            "stage 2 only (stage1: false) − the paper's settings"),
    Verdict("stride 8 beats 4", "ablation", "stride-8", "full", ("clean", "global_fidelity"), +1,
            "the paper's settings at stride 8 − at stride 4"),
)  # fmt: skip
# held-out repeats of the verdicts that have rows there
HELDOUT = tuple(
    Verdict(v.claim + " (held-out)", "heldout", v.a, v.b, v.metrics, v.sign, v.meaning)
    for v in VERDICTS
    if v.source == "comparison"
)


def today_rows(source: str, method: str) -> list[dict]:
    """Today's rows of the exact uniform judge: the bench folders, and the probe CSVs for methods
    the suites do not hold (their variant names: `renoise` is the default preset's control, the
    same run as `paper-renoise` when t_min is set)."""
    probe = RESULTS / "probe"
    if source == "heldout-cfg6":
        return probe_rows(probe / "heldout-cfg6.csv", method)
    if method == "codenoise+noise=rescheduled":
        name = "rescheduled.csv" if source == "comparison" else "rescheduled-heldout.csv"
        return probe_rows(probe / name, method)
    if method == BAND and source == "comparison":
        return probe_rows(probe / "combo.csv", "renoise+t_min=300")
    folder = {"comparison": "toyworld", "ablation": "toyworld-ablation", "heldout": "toyworld-heldout"}[
        source
    ]
    return [r for r in read_rows(RESULTS / folder / "results.csv") if r["method"] == method]


def probe_rows(path: Path, variant: str) -> list[dict]:
    """syncos_probe.py rows in the bench's column names."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == variant]
    return [{**r, "method": r["variant"], "nfe": r["nfe_total"]} for r in rows]


def rows_of(judge: Judge, source: str, method: str) -> list[dict]:
    """One method's rows under one judge; `window` / `window-renoise`: the judge's window rows."""
    if method.startswith("window"):
        method = window_methods(judge.decided)[method != "window"]
    own = [r for r in read_rows(judge.folder / source / "results.csv") if r["method"] == method]
    if judge.today and not own and (source, method) != ("heldout", BAND):
        return today_rows(source, method)
    return own


def scenario_means(rows: list[dict], key: str) -> dict[str, float]:
    """Scenario -> mean of ``key`` over its seeds (seeds first, then scenarios)."""
    per: dict[str, list[float]] = {}
    for r in rows:
        if r.get(key) not in (None, ""):
            per.setdefault(r["scenario"], []).append(float(r[key]))
    return {s: float(np.mean(v)) for s, v in per.items()}


@dataclass
class Cell:
    diffs: dict[str, tuple[float, float]]  # metric -> (mean, half-width)
    scenarios: int
    seeds: int
    nfe: tuple[float, float]  # mean NFE per video of a and of b
    outcome: str
    shared_fifo: bool = False  # FIFO ran in the shared-timestep approximation, not as FIFO-Diffusion


def decide(v: Verdict, diffs: dict[str, tuple[float, float]]) -> str:
    """holds / reverses / unresolved / mixed from the intervals, by the rule written in the docs."""
    up = [m for m, (d, h) in diffs.items() if d - h > 0]
    down = [m for m, (d, h) in diffs.items() if d + h < 0]
    if v.sign == 0:
        return "reverses" if up else "holds"
    good, bad = (up, down) if v.sign > 0 else (down, up)
    if good and not bad:
        return "holds"
    if bad and not good:
        return "reverses"
    return "mixed" if good else "unresolved"


SOURCE_SUITE = {"comparison": "toyworld", "ablation": "toyworld-ablation"}  # else toyworld-heldout


def lighting_open(source: str) -> list[str]:
    """The scenarios of a source with an event whose prompt (global + local) leaves the lighting
    open: the only ones a prior over lighting can change (a named value or a named change, "as
    the sun sets", is unaffected; docs/learned.md, "The prior")."""
    from syncos.backends.toyworld.world import parse_prompt
    from syncos.scenario import read_scenario_file

    out = []
    for name, path in load_suite_of(source).scenarios.items():
        raw = read_scenario_file(path)
        if any(
            len(parse_prompt(f"{raw['global_prompt']}. {e['prompt']}").lightings) > 1 for e in raw["events"]
        ):
            out.append(name)
    return out


def changed_rows(judge: Judge, source: str) -> str:
    """How many of a judge's rows differ from the uniform judge's run of the same scenario, method
    and seed (any metric by more than 2e-4: the probe's rows are rounded to 4 decimals), and where."""
    base = JUDGES["exact-uniform"]
    mine = {
        (r["scenario"], r["method"], r["seed"]): r for r in read_rows(judge.folder / source / "results.csv")
    }
    if not mine:
        return "not run"
    shared = differ = 0
    where: set[str] = set()
    for method in sorted({k[1] for k in mine}):
        for r in rows_of(base, source, method):
            k = (r["scenario"], method, str(r["seed"]))
            if k in mine:
                shared += 1
                if any(abs(float(mine[k][m]) - float(r[m])) > 2e-4 for m in (SC, BC, "clean")):
                    differ += 1
                    where.add(k[0])
    return f"{differ} of {shared} ({', '.join(sorted(where)) or 'none'})"


def cell(judge: Judge, v: Verdict) -> Cell | None:
    a, b = rows_of(judge, v.source, v.a), rows_of(judge, v.source, v.b)
    if not a or not b:
        return None
    diffs = {}
    common: set[str] = set()
    for m in v.metrics:
        ma, mb = scenario_means(a, m), scenario_means(b, m)
        common = set(ma) & set(mb)
        diffs[m] = interval([ma[s] - mb[s] for s in sorted(common)])
    seeds = len({r["seed"] for r in a if r["scenario"] in common})
    nfe = tuple(
        float(np.mean([x for s, x in scenario_means(r, "nfe").items() if s in common])) for r in (a, b)
    )
    shared = any(r.get("fifo_mode") == "shared" for r in (*a, *b))
    return Cell(diffs, len(common), seeds, nfe, decide(v, diffs), shared)  # type: ignore[arg-type]


SHORT = {SC: "subject", BC: "background", "clean": "clean", "global_fidelity": "global fid."}


def show(c: Cell | None) -> str:
    if c is None:
        return "not run"
    parts = [f"{SHORT[m]} {d:+.3f} ± {h:.3f}{' *' if abs(d) > h else ''}" for m, (d, h) in c.diffs.items()]
    return (
        f"**{c.outcome}**: {'; '.join(parts)}; NFE {c.nfe[0]:.0f} vs {c.nfe[1]:.0f} "
        f"({c.scenarios} sc. x {c.seeds} seeds)"
        + ("; FIFO is the shared-timestep approx., not FIFO-Diffusion" if c.shared_fifo else "")
    )


def table(verdicts: tuple[Verdict, ...], judges: list[Judge]) -> str:
    out = ["| verdict (a − b) | " + " | ".join(j.label for j in judges) + " |"]
    out.append("|---" * (len(judges) + 1) + "|")
    for v in verdicts:
        row = f"| **{v.claim}**: {v.meaning} |"
        out.append(row + "".join(f" {show(cell(j, v))} |" for j in judges))
    return "\n".join(out)


def window_rows(judges: list[Judge], source: str = "comparison") -> str:
    """SynCoS with the window where each judge decides, against its control and co-denoising."""
    out = ["| judge | window | SynCoS − its control | SynCoS − co-denoising | control − co-denoising |"]
    out.append("|---|---|---|---|---|")
    for j in judges:
        pairs = (("window", "window-renoise"), ("window", "codenoise"), ("window-renoise", "codenoise"))
        cells = [cell(j, Verdict("", source, a, b, (SC, BC), +1, "")) for a, b in pairs]
        w = f"decided by t = {j.decided:g}: log-SNR <= {window_until(j.decided)}"
        out.append(f"| {j.label} | {w} | " + " | ".join(show(c) for c in cells) + " |")
    return "\n".join(out)


def prior_reach(judges: list[Judge]) -> str:
    peaked = next(j for j in judges if j.name == "exact-peaked")
    out = ["| rows | lighting open in | peaked rows that differ from uniform |", "|---|---|---|"]
    for source in ("comparison", "ablation", "heldout", "heldout-cfg6"):
        open_ = lighting_open(source)
        n = len(load_suite_of(source).scenarios)
        shown = f"{len(open_)} of {n} ({', '.join(open_) or 'none'})"
        out.append(f"| {source} | {shown} | {changed_rows(peaked, source)} |")
    return "\n".join(out)


def load_suite_of(source: str):
    from syncos.bench import load_suite

    return load_suite(SUITES / SOURCE_SUITE.get(source, "toyworld-heldout"))


SECTION = "## The verdicts by judge"


def cmd_table(args: argparse.Namespace) -> int:
    decided = {k: float(v) for k, v in (d.split("=", 1) for d in args.decided)}
    judges = [with_decided(JUDGES[n], decided.get(n)) for n in ("exact-uniform", "exact-peaked", "learned")]
    judges += [j for j in EARLIER.values() if j.folder.is_dir()]
    text = "\n\n".join(
        [
            table(VERDICTS, judges),
            "Held out (the 8 scenarios of `benchmarks/suites/toyworld-heldout`, 2 seeds):",
            table(HELDOUT, judges),
            "What the peaked prior can change: the scenarios with an event whose prompt leaves the "
            "lighting open, and the rows of the peaked judge that differ from the uniform judge's "
            "(same scenario, method and seed):",
            prior_reach(judges),
            "SynCoS with its window where each judge decides (comparison suite), against its "
            "re-noise control; `holds` here means SynCoS is better:",
            window_rows(judges),
            "The same on the held-out suite:",
            window_rows(judges, "heldout"),
        ]
    )
    if args.docs:
        replace_block(Path(args.docs), text)
    print(text)
    return 0


BEGIN, END = "<!-- verdicts table: begin -->", "<!-- verdicts table: end -->"


def replace_block(doc: Path, text: str) -> None:
    """Put the tables between the markers of the docs section (written once by hand)."""
    s = doc.read_text(encoding="utf-8")
    if BEGIN not in s or END not in s:
        raise SystemExit(f"{doc}: no {BEGIN} ... {END} block to fill (in the section {SECTION!r})")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    doc.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", s), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="fill one judge's rows (resumable)")
    c = sub.add_parser("cost", help="the NFE of a judge's runs and their hours at a measured rate")
    for p in (r, c):
        p.add_argument("judge", choices=list(JUDGES))
        p.add_argument(
            "--decided", type=float, help="the judge's decision timestep (default: the calibration's)"
        )
        p.add_argument("--only", nargs="+", choices=["heldout", "ablation", "comparison", "heldout-cfg6"])
        p.add_argument("--folder", help="its rows' folder (e.g. for earlier weights of the learned model)")
    r.add_argument("--dry-run", action="store_true", help="print the commands only")
    c.add_argument(
        "--seconds-per-nfe", type=float, default=0.046, help="measured (default: learned, step 3500)"
    )
    c.add_argument("--stage2-seconds-per-nfe", type=float, help="in SynCoS's CSD, if it differs (measured)")
    t = sub.add_parser("table", help="the verdicts by judge, from the rows")
    t.add_argument("--docs", help="also write the tables into this file's verdicts block")
    t.add_argument("--decided", nargs="+", default=[], metavar="JUDGE=T", help="as given to run --decided")
    args = ap.parse_args(argv)
    return {"run": cmd_run, "cost": cmd_cost, "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
