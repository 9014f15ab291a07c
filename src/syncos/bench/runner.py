"""Run every (scenario, method, seed) of a suite that results.csv does not hold yet.

Per row: ``api.generate`` with one cached backend per model setting, the decoded frames, the
backend's own metrics (``api.evaluate_frames``), optional weight-based metrics, the drift curve
(appended to drift.csv before the row, so a crash in between only duplicates drift rows, which
the report de-duplicates), and for seed 0 a strip of all frames for the contact sheet.

Under torchrun the ranks first take whole rows, each alone (round robin over the rows to do),
writing them to its own ``results.rank{r}.csv`` as it goes; then rank 0 collects them and
appends them to results.csv in the single-process order. Rows whose model does not fit one
device (``cpu_offload: true``) are then sampled by all ranks together, chunk-parallel. A rerun
after a crash first folds the per-rank files into results.csv, so no finished row is redone.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from syncos import api, distributed
from syncos.api import evaluate_frames, generate, video_events
from syncos.backends import Backend
from syncos.bench.drift import drift_curve, pixel_features
from syncos.bench.suite import Suite
from syncos.bench.table import append_rows, read_rows, row_key
from syncos.errors import UserError
from syncos.io import check_outdir, prepare_outdir
from syncos.scenario import load_scenario

RESULTS, DRIFT, STRIPS, ERRORS = "results.csv", "drift.csv", "strips", "errors.log"


def drift_curves(backend: Backend, frames: np.ndarray, scorer: Any = None) -> dict[str, dict[int, float]]:
    """Kind -> (distance -> mean similarity of frame pairs that far apart).

    toyworld: its own subject and background similarity of decoded attributes (the kernels of
    its consistency metrics); with a feature scorer: embedding cosine; else pooled pixels.
    """
    if backend.name == "toyworld":
        from syncos.backends.toyworld import metrics as tw

        by_d = tw.consistency_by_distance(tw.decode_frames(frames))
        return {k: {d: float(v[d]) for d in range(1, len(v))} for k, v in by_d.items()}
    if scorer is not None:
        return {"feature": drift_curve(scorer.frame_features(frames), "cosine")}
    return {"pixel": drift_curve(pixel_features(frames), "l1")}


def run_row(
    suite: Suite, scenario: str, method: str, seed: int, backends: dict, scorer: Any = None, load=None
):
    """(results row, drift curve, frames) of one run."""
    load = load or api.load_backend
    sc = load_scenario(suite.resolve(scenario, method, seed))
    settings = sc.model_settings()
    key = json.dumps([sc.model, settings], sort_keys=True, default=str)
    if key not in backends:
        backends[key] = load(sc.model, **settings)
    start = time.perf_counter()
    gen = generate(sc, backend=backends[key])
    frames = gen.frames()
    wall = time.perf_counter() - start
    metrics = dict(evaluate_frames(gen, frames) or {})
    if scorer is not None:
        metrics.update(scorer.evaluate(frames, sc.global_prompt, video_events(gen.plan, sc)))
    row = {
        "scenario": scenario,
        "method": method,
        "seed": seed,
        "sampler": sc.method,
        "events": len(sc.events),
        "frames": len(frames),
        "chunks": gen.plan.num_chunks,
        "wall_s": round(wall, 3),
        "nfe": sum(gen.nfe.values()),
        # the judge: a row from `syncos bench --model/--set model_options...` says which one made it
        "model": sc.model,
        "model_options": json.dumps(sc.model_options, sort_keys=True, default=str),
        **({"fifo_mode": gen.fifo_mode} if gen.fifo_mode else {}),
        **{k: round(float(v), 6) for k, v in metrics.items()},
    }
    return row, drift_curves(gen.backend, frames, scorer), frames


def run_suite(
    suite: Suite,
    outdir: str | Path,
    *,
    methods: Sequence[str] | None = None,
    seeds: int | None = None,
    scenarios: Sequence[str] | None = None,
    scorer: Any = None,
    log: Callable[[str], None] = print,
    load: Callable[..., Backend] | None = None,
) -> Path:
    """Fill OUTDIR/results.csv (resumable); returns OUTDIR. A failing row is logged and skipped.

    ``load(model, **settings)`` builds backends (default ``api.load_backend``; tests pass fakes);
    one is kept per setting.
    """
    check_outdir(outdir)
    methods = list(methods or suite.methods)
    for m in methods:
        suite.sampler_of(m)
    names = list(scenarios or suite.scenarios)
    unknown = [n for n in names if n not in suite.scenarios]
    if unknown:
        raise UserError(
            f"scenario {unknown[0]!r} is not in the suite; use one of {', '.join(suite.scenarios)}"
        )
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise UserError(f"seeds: expected a positive number of seeds, got {seeds!r}")
    out = prepare_outdir(outdir)
    order = {(s, m): i for i, (s, m) in enumerate((s, m) for s in names for m in methods)}
    if distributed.is_main():
        fold_rank_files(out, order)
    done = {row_key(r) for r in read_rows(out / RESULTS)}
    todo = [
        (s, m, k)
        for s in names
        for m in methods
        for k in range(seeds if seeds is not None else suite.seeds)
        if (s, m, str(k)) not in done
    ]
    todo = distributed.gather_objects(todo, "sharing the rows to do")[0]  # rank 0's view
    world, rank = distributed.world_size(), distributed.rank()
    whole = [r for r in todo if world > 1 and fits_one_device(suite, *r)]
    shared = [r for r in todo if r not in whole]
    mine = whole[rank::world]
    if world > 1:
        log(f"{len(todo)} runs to do ({len(done)} already in {out / RESULTS}): {len(whole)} whole rows over "
            f"{world} ranks, {len(shared)} chunk-parallel")  # fmt: skip
    else:
        log(f"{len(todo)} runs to do ({len(done)} already in {out / RESULTS})")
    backends: dict[str, Backend] = {}
    suffix = f".rank{rank}" if world > 1 else ""
    kept, written = [], 0
    with distributed.alone():
        for i, (s, m, k) in enumerate(mine):
            got = _run(
                suite, out, s, m, k, backends, scorer, load, log, f"[rank {rank}: {i + 1}/{len(mine)}]"
            )
            if got is not None:
                kept.append(_record(out, *got, suffix=suffix))
    if world > 1:
        collected = [r for part in distributed.gather_objects(kept, "collecting rows") for r in part]
        written += len(collected)
        if distributed.is_main():
            for row, drift, strip in sorted(
                collected, key=lambda r: todo.index((r[0]["scenario"], r[0]["method"], r[0]["seed"]))
            ):
                _write(out, row, drift, strip)
        for name in (RESULTS, DRIFT):
            rank_file(out / name, rank).unlink(missing_ok=True)
    for i, (s, m, k) in enumerate(shared):  # every rank samples; rank 0 writes
        got = _run(suite, out, s, m, k, backends, scorer, load, log, f"[{i + 1}/{len(shared)}]")
        if got is not None:
            written += 1
            if distributed.is_main():
                _record(out, *got)
    if todo and not written and not done:
        raise UserError(f"all {len(todo)} runs failed, so there is nothing to report; see {out / ERRORS}")
    return out


def fits_one_device(suite: Suite, scenario: str, method: str, seed: int) -> bool:
    """Whether one rank can run this row alone: not when the scenario asks for CPU offloading."""
    return not load_scenario(suite.resolve(scenario, method, seed)).model_settings().get("cpu_offload")


def rank_file(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def _run(suite, out, s, m, k, backends, scorer, load, log, tag):
    """(row, curve, frames) of one row, or None when it failed (logged; retried on rerun)."""
    try:
        row, curve, frames = run_row(suite, s, m, k, backends, scorer, load)
    except Exception as e:  # one bad row must not end a long benchmark; it is retried on rerun
        with (out / ERRORS).open("a", encoding="utf-8") as f:
            f.write(f"{s} {m} seed {k}: {e!r}\n{traceback.format_exc()}\n")
        log(f"{tag} {s} {m} seed {k}: FAILED ({e}); see {out / ERRORS}")
        return None
    log(f"{tag} {s} {m} seed {k}: {row['wall_s']:.1f} s, {row['nfe']} NFE")
    return row, curve, frames


def _record(out: Path, row: dict, curve: dict, frames: np.ndarray, suffix: str = ""):
    """Write one finished row (to the per-rank files when ``suffix`` is set); returns what was written."""
    s, m, k = row["scenario"], row["method"], row["seed"]
    strip = None
    if k == 0:
        step = max(1, frames.shape[1] // 64)  # toyworld decodes 32 px frames upscaled 8x
        strip = np.concatenate(list(frames[:, ::step, ::step]), axis=1)
    drift = [
        dict(scenario=s, method=m, seed=k, kind=kind, distance=d, similarity=round(v, 6))
        for kind, c in curve.items()
        for d, v in c.items()
    ]
    _write(out, row, drift, strip, suffix)
    return row, drift, strip


def _write(out: Path, row: dict, drift: list[dict], strip: np.ndarray | None, suffix: str = "") -> None:
    if strip is not None:
        folder = out / STRIPS / row["scenario"]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(strip).save(folder / f"{row['method']}.png")
    append_rows(out / f"drift{suffix}.csv", drift)  # before the row: a crash between only duplicates drift
    append_rows(out / f"results{suffix}.csv", [row])


def fold_rank_files(out: Path, order: dict[tuple[str, str], int]) -> None:
    """Append the rows an interrupted multi-rank run left in per-rank files, in suite order; drop them."""
    for name in (RESULTS, DRIFT):
        files = sorted(out.glob(f"{Path(name).stem}.rank*{Path(name).suffix}"))
        done = {row_key(r) for r in read_rows(out / RESULTS)}
        rows = [r for f in files for r in read_rows(f) if name == DRIFT or row_key(r) not in done]
        rows.sort(key=lambda r: (order.get((r["scenario"], r["method"]), len(order)), int(r["seed"])))
        append_rows(out / name, rows)
        for f in files:
            f.unlink()
