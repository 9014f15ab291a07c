"""The Gradio layout of the studio: widgets wired to :mod:`syncos.ui.jobs`, nothing more."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool

import gradio as gr  # noqa: E402

from syncos.errors import UserError, first_line  # noqa: E402
from syncos.samplers import SAMPLERS  # noqa: E402
from syncos.ui.access import check_exposure  # noqa: E402
from syncos.ui.jobs import (  # noqa: E402
    DEFAULT_SCENARIO,
    MAX_WAITING,
    Form,
    Studio,
    form_from_scenario,
    from_yaml,
    move_row,
    scenario_from_form,
    to_yaml,
)
from syncos.ui.plan_figure import plan_svg  # noqa: E402

HEADERS = ["prompt", "duration", "unit"]
CSS = "#plan-text textarea { font-family: ui-monospace, monospace; }"  # the plan's tables line up
MODELS = ["toyworld", "THUDM/CogVideoX-2b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"]


def _rows(value: Any) -> list[list[Any]]:
    """The table's value as rows (Gradio hands over a list of lists or a DataFrame)."""
    if hasattr(value, "values") and hasattr(value, "columns"):
        return value.values.tolist()
    return [list(r) for r in value or []]


def build(studio: Studio, scenario: dict[str, Any] | None = None, outputs: str = "") -> gr.Blocks:
    """The page; ``outputs`` says where the videos go (shown under the title)."""
    form = form_from_scenario(scenario or DEFAULT_SCENARIO)
    with gr.Blocks(title="syncos studio") as demo:
        extra = gr.State(form.extra)
        job_id = gr.State("")
        gr.Markdown("# syncos studio\nA global prompt, a timeline of events, a model: a long video.")
        gr.Markdown(outputs or f"outputs in `{studio.root}`", elem_id="outputs")
        with gr.Row():
            with gr.Column(scale=3):
                global_prompt = gr.Textbox(form.global_prompt, label="global prompt", elem_id="global-prompt")
                events = gr.Dataframe(
                    form.events,
                    headers=HEADERS,
                    datatype=["str", "number", "str"],
                    type="array",
                    interactive=True,
                    label="events (unit: seconds or frames)",
                    elem_id="events",
                )
                with gr.Row(equal_height=True):  # narrow enough that the five stay on one line
                    row = gr.Number(
                        len(form.events), label="row", precision=0, minimum=1, elem_id="row", min_width=70
                    )
                    add = gr.Button("add event", elem_id="add-event", min_width=80)
                    remove = gr.Button("remove row", elem_id="remove-event", min_width=80)
                    up = gr.Button("move up", elem_id="move-up", min_width=80)
                    down = gr.Button("move down", elem_id="move-down", min_width=80)
            with gr.Column(scale=2):
                model = gr.Dropdown(
                    MODELS, value=form.model, allow_custom_value=True, label="model (id or local folder)"
                )
                method = gr.Radio(list(SAMPLERS), value=form.method, label="method")
                with gr.Row():
                    steps = gr.Number(form.steps, label="steps", precision=0, minimum=1, elem_id="steps")
                    guidance = gr.Number(form.guidance_scale, label="guidance scale")
                with gr.Row():
                    stride = gr.Number(form.stride, label="stride (0: model's)", precision=0, minimum=0)
                    seed = gr.Number(form.seed, label="seed", precision=0, minimum=0)
        with gr.Row():
            plan_button = gr.Button("plan", elem_id="plan")
            timed = gr.Checkbox(False, label="estimate time (a few timed forward passes)")
            generate = gr.Button("generate", variant="primary", elem_id="generate")
            cancel = gr.Button("cancel", variant="stop", elem_id="cancel")
        status = gr.Markdown("", elem_id="status")
        plan_figure = gr.HTML("", elem_id="plan-figure")
        plan_text = gr.Textbox(
            "", label="plan", lines=10, max_lines=40, interactive=False, elem_id="plan-text"
        )
        with gr.Row():
            preview = gr.Image(
                label="preview (clean estimate while sampling)", interactive=False, elem_id="preview"
            )
            video = gr.Video(label="video", interactive=False, elem_id="video")
        summary = gr.Markdown("", elem_id="summary")  # the finished run's metrics and notes
        record = gr.File(label="run.json", interactive=False, elem_id="run-json")
        with gr.Accordion("scenario as YAML (import / export)", open=False):
            yaml_text = gr.Code("", language="yaml", label="scenario.yaml", lines=12, elem_id="yaml")
            with gr.Row():
                export = gr.Button("export the editor to YAML", elem_id="export")
                load = gr.Button("import this YAML into the editor", elem_id="import")
                upload = gr.UploadButton("import a file", file_types=[".yaml", ".yml", ".json"])

        fields = [global_prompt, events, model, method, steps, guidance, stride, seed, extra]

        def current(gp, ev, mo, me, st, gs, sd, se, ex) -> dict[str, Any]:
            f = Form(
                gp,
                _rows(ev),
                mo or "toyworld",
                me,
                int(st or 1),
                float(gs or 1.0),
                int(sd or 0),
                int(se or 0),
            )
            f.extra = dict(ex or {})
            return scenario_from_form(f)

        def show(f: Form) -> list[Any]:
            return [
                f.global_prompt,
                f.events,
                f.model,
                f.method,
                f.steps,
                f.guidance_scale,
                f.stride,
                f.seed,
                f.extra,
            ]

        def on_plan(*values):
            *form_values, with_time = values
            try:
                plan = studio.plan(current(*form_values), timed=with_time)
            except UserError as e:
                return f"error: {e}", ""
            return plan.format(), plan_svg(plan)

        def on_add(ev):  # a copy of the last event, to edit
            rows = _rows(ev)
            return rows + [list(rows[-1]) if rows else ["", 2.0, "seconds"]]

        def on_remove(ev, r):
            rows = _rows(ev)
            i = int(r or 0) - 1
            return [x for j, x in enumerate(rows) if j != i] if len(rows) > 1 else rows

        def on_generate(*values):
            try:
                job = studio.submit(current(*values))
            except UserError as e:
                yield f"error: {e}", None, None, "", None, ""
                return
            while not job.finished:
                yield studio.status(job), job.preview, None, "", None, job.id
                job.done.wait(0.5)
            yield (
                studio.status(job),
                job.preview,
                job.video and str(job.video),
                job.summary,
                job.record and str(job.record),
                "",
            )

        def on_cancel(jid):
            for job in studio.jobs():
                if job.id == jid:
                    job.cancel()
                    return "cancelling after this step"
            return "nothing to cancel"

        def on_export(*values):
            try:
                return to_yaml(current(*values))
            except UserError as e:
                return f"# error: {e}"

        def on_import(text):
            try:
                return [*show(form_from_scenario(from_yaml(text))), "imported"]
            except UserError as e:
                return [gr.skip()] * len(fields) + [f"error: {e}"]

        def on_upload(path):
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                return [gr.skip()] * (len(fields) + 1) + [f"error: {first_line(e)}"]
            return [text, *on_import(text)]

        plan_button.click(on_plan, [*fields, timed], [plan_text, plan_figure])
        add.click(on_add, events, events)
        remove.click(on_remove, [events, row], events)
        up.click(lambda ev, r: move_row(_rows(ev), int(r or 0) - 1, -1), [events, row], events)
        down.click(lambda ev, r: move_row(_rows(ev), int(r or 0) - 1, 1), [events, row], events)
        # Every request streams its own status; the studio's queue, not Gradio's, runs one job at a time.
        outputs = [status, preview, video, summary, record, job_id]
        generate.click(on_generate, fields, outputs, concurrency_limit=None)
        cancel.click(on_cancel, job_id, status, queue=False)
        export.click(on_export, fields, yaml_text)
        load.click(on_import, yaml_text, [*fields, status])
        upload.upload(on_upload, upload, [yaml_text, *fields, status])
    return demo


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    scenario: str | None = None,
    root: str | None = None,
    block: bool = True,
    auth: tuple[str, str] | None = None,
    no_auth: bool = False,
    max_waiting: int = MAX_WAITING,
) -> gr.Blocks:
    """Serve the studio (until interrupted, unless ``block`` is False). Outputs go to ROOT, kept; without
    one, to a temporary folder removed when the studio stops. Only this machine can reach it unless
    ``host`` says otherwise, and then only with ``auth`` (or an explicit ``no_auth``)."""
    from syncos.scenario import read_scenario_file

    check_exposure(host, auth, no_auth)
    raw = read_scenario_file(scenario) if scenario else None
    if raw is not None:
        from_yaml(to_yaml(raw))  # the scenario's own errors, before the server starts
    if root is None:
        folder = Path(tempfile.mkdtemp(prefix="syncos-studio-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # also when the server is not closed
        where = f"outputs in `{folder}`, a temporary folder removed when the studio stops"
        where += " (`--output DIR` keeps them)"
    else:
        folder = Path(root)
        where = f"outputs in `{folder}` (kept)"
    demo = build(Studio(folder, max_waiting=max_waiting), raw, where)
    print(f"syncos studio on http://{host}:{port} ({where.replace('`', '')}); Ctrl-C stops it", flush=True)
    if block and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C, cleaning up
    try:
        demo.queue(max_size=max_waiting + 16).launch(
            server_name=host,
            server_port=port,
            allowed_paths=[str(folder)],
            quiet=True,
            footer_links=[],
            share=False,
            prevent_thread_lock=not block,
            css=CSS,
            auth=auth,
            max_threads=max_waiting + 16,  # every waiting job streams its status from a thread
        )
    finally:
        if block and root is None:
            shutil.rmtree(folder, ignore_errors=True)
    return demo
