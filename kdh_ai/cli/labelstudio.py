"""``kdh labelstudio start|stop|status|list|add-annotator|backup|restore``, ``kdh push``, ``kdh pull`` and ``kdh status``.

Exit codes are those of :mod:`kdh_ai.cli._common`; 4 means the Label Studio server is down, unreachable or
refused the token (the message says what to do; nothing half-done is left in the job directory).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from kdh_ai.cli._common import console, err_console, fail

if TYPE_CHECKING:
    from kdh_ai.labelstudio.server import ServerStatus

__all__ = ["app", "register"]

app = typer.Typer(help="Run or check the Label Studio server and its annotator accounts.", no_args_is_help=True)

DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="Server data directory. [default: "
                                                    "$KDH_LS_DATA_DIR or ~/.kdh/labelstudio]")]


ClientOpt = Annotated[Optional[str], typer.Option("--client", help="The client whose instance on the hub this is "
                                                 "(one Label Studio per client; see `kdh labelstudio list`).")]

_LAN_WARNING = ("[bold yellow]warning:[/] --lan makes this Label Studio reachable from every machine on this "
                "network: its login page, its API and, to any logged-in account, every project, annotation and "
                "audio file of this instance. PostgreSQL, the secrets files and other clients' instances stay on "
                "127.0.0.1. Give each annotator their own account, and use it only on the hub's network.")


def _hub():  # noqa: ANN202 - lazy import keeps `kdh --help` fast
    from kdh_ai.labelstudio.hub import Hub

    return Hub()


@app.command("start")
def ls_start(
    port: Annotated[Optional[int], typer.Option(help="Port to listen on. [default: 8080; with --client, the "
                                                "client's port, else the first free one from 8101]")] = None,
    data_dir: DataDirOpt = None,
    lan: Annotated[bool, typer.Option("--lan", help="Listen on every network interface so annotators on other "
                                      "machines of the hub can connect (prints what that exposes).")] = False,
    database: Annotated[Optional[str], typer.Option(
        help="sqlite or postgresql. [default: sqlite; with --client, postgresql: kdh runs its own PostgreSQL in "
             "the hub folder, or uses KDH_HUB_PG_URL. Without --client, postgresql reads POSTGRE_NAME, "
             "POSTGRE_USER, POSTGRE_PASSWORD, POSTGRE_HOST, POSTGRE_PORT]")] = None,
    client: ClientOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server (first start: ~30-120 s).")] = 300.0,
) -> None:
    """Start the local Label Studio server, or a client's instance on the hub (--client), or check the central
    one given by KDH_LS_URL and KDH_LS_TOKEN."""
    import os

    from kdh_ai.labelstudio.server import ServerOptions, server_status, start_server

    if os.environ.get("KDH_LS_URL") and os.environ.get("KDH_LS_TOKEN"):
        st = server_status(data_dir)
        _print_status(st)
        if not (st.running and st.token_ok):
            raise typer.Exit(4)
        console.print("KDH_LS_URL is set: using that central server; nothing started here.")
        return
    if lan:
        err_console.print(_LAN_WARNING)
    if client is not None:
        if data_dir is not None:
            raise fail("--client instances live in the hub folder (KDH_HUB_DIR); drop --data-dir")
        hub = _hub()
        first = client not in hub.clients()
        if first:
            console.print(f"First start of client {client}'s instance in {hub.data_dir(client)}: setting up its "
                          "database takes a minute or two.")
        info = hub.start(client, port=port, database=database, lan=lan,  # type: ignore[arg-type]
                         start_timeout_s=timeout)
    else:
        opts = ServerOptions(data_dir=data_dir, port=port or 8080, lan=lan,
                             database=database or "sqlite",  # type: ignore[arg-type]
                             start_timeout_s=timeout)
        if not data_dir and not opts.resolved_data_dir.exists():
            console.print(f"First start in {opts.resolved_data_dir}: setting up the database takes a minute or "
                          "two.")
        info = start_server(opts)
    who = f"client {client}'s Label Studio" if client else "Label Studio"
    if info.already_running:
        console.print(f"{who} is already running at [bold]{info.url}[/] (pid {info.pid}); nothing started.")
    else:
        console.print(f"{who} started at [bold]{info.url}[/] in {info.startup_s:.0f} s (pid {info.pid}).")
    if info.lan_url:
        console.print(f"Annotators on other machines open [bold]{info.lan_url}[/].")
    flag = f" --client {client}" if client else ""
    console.print(f"Admin login: {info.admin_email}; its password and the API token are in {info.secrets_path} "
                  f"(readable only by you). Add annotators with `kdh labelstudio add-annotator EMAIL{flag}`.")


@app.command("stop")
def ls_stop(data_dir: DataDirOpt = None, client: ClientOpt = None,
            all_: Annotated[bool, typer.Option("--all", help="Stop every client's instance and the hub's "
                                               "PostgreSQL.")] = False) -> None:
    """Stop the local Label Studio server that kdh started (or a client's instance, or the whole hub)."""
    import os

    from kdh_ai.labelstudio.server import stop_server

    if os.environ.get("KDH_LS_URL"):
        console.print("KDH_LS_URL is set: the central server is not kdh's to stop. Checking for a local one...")
    if all_:
        stopped = _hub().stop_all()
        console.print("Stopped: " + (", ".join(stopped) if stopped else "nothing was running") + ".")
        return
    stopped_one = _hub().stop(client) if client else stop_server(data_dir)
    what = f"client {client}'s Label Studio" if client else "Label Studio"
    console.print(f"{what} stopped." if stopped_one else f"No local {what} server was running.")


@app.command("list")
def ls_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every client's instance on the hub: status, URL, database and number of annotators."""
    hub = _hub()
    rows = hub.instances()
    if as_json:
        console.print_json(json.dumps([{**r.__dict__, "data_dir": str(r.data_dir)} for r in rows]))
        return
    if not rows:
        console.print(f"No client instances in {hub.root} yet; start one with `kdh labelstudio start --client NAME`.")
        return
    table = Table(title=f"Label Studio instances in {hub.root}")
    for col in ("client", "status", "url", "LAN url", "database", "annotators"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, "running" if r.running else "stopped", r.url, r.lan_url or "", r.database,
                      "" if r.annotators is None else str(r.annotators))
    console.print(table)


@app.command("backup")
def ls_backup(client: Annotated[str, typer.Option("--client", help="The client whose instance to back up.")],
              out: Annotated[Optional[Path], typer.Option(help="Folder for the backup. [default: "
                                                          "HUB/backups/CLIENT]")] = None) -> None:
    """Back up a client's instance (database with pg_dump or SQLite's backup API, plus its data folder)."""
    path = _hub().backup(client, out)
    console.print(f"Backup of client {client}: [bold]{path}[/] (it holds the admin token: keep it private). "
                  f"Restore with `kdh labelstudio restore {path} --client NAME`.")


@app.command("restore")
def ls_restore(backup: Annotated[Path, typer.Argument(help="A folder written by `kdh labelstudio backup`.")],
               client: Annotated[str, typer.Option("--client", help="Client to restore into (new, or stopped with "
                                                   "--replace).")],
               replace: Annotated[bool, typer.Option("--replace", help="Overwrite this client's stopped "
                                                     "instance.")] = False) -> None:
    """Restore a backup into a client's instance; then start it with `kdh labelstudio start --client NAME`."""
    _hub().restore(client, backup, replace=replace)
    console.print(f"Restored {backup} into client {client}. Start it: `kdh labelstudio start --client {client}`.")


def _print_status(st: ServerStatus) -> None:
    table = Table(title="Label Studio", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in (("mode", st.mode), ("url", st.url), ("running", st.running), ("token accepted", st.token_ok),
                        ("version", st.version), ("user", st.user), ("projects", st.projects), ("pid", st.pid),
                        ("data dir", st.data_dir), ("LAN url", st.lan_url), ("note", st.message)):
        if value is not None:
            table.add_row(name, str(value))
    console.print(table)


@app.command("status")
def ls_status(data_dir: DataDirOpt = None, client: ClientOpt = None) -> None:
    """Is the server up, does it accept the token, which version is it. Exit code 4 when not usable."""
    from kdh_ai.labelstudio.server import server_status

    st = server_status(_hub().data_dir(client) if client else data_dir)
    _print_status(st)
    if not (st.running and st.token_ok):
        raise typer.Exit(4)


@app.command("add-annotator")
def ls_add_annotator(
    email: Annotated[str, typer.Argument(help="The annotator's login e-mail.")],
    password: Annotated[Optional[str], typer.Option(help="Their password (at least 8 characters). "
                                                    "[default: a random one, printed once]")] = None,
    first_name: Annotated[str, typer.Option(help="First name shown in Label Studio.")] = "",
    last_name: Annotated[str, typer.Option(help="Last name shown in Label Studio.")] = "",
    data_dir: DataDirOpt = None,
    client: ClientOpt = None,
) -> None:
    """Create an annotator account that logs in with a password, and print how to log in.

    On the hub, the account is made only on the client's instance (--client): it cannot see other clients.
    """
    from kdh_ai.labelstudio.accounts import add_annotator
    from kdh_ai.labelstudio.connection import resolve_connection
    from kdh_ai.labelstudio.server import running_server

    conn = resolve_connection(data_dir, client=client)
    ann = add_annotator(conn, email, password=password, first_name=first_name, last_name=last_name)
    if client and conn.local:
        data_dir = _hub().data_dir(client)
    local = running_server(data_dir) if conn.local else None
    login = f"{local.lan_url}/user/login/" if local is not None and local.lan_url else ann.login_url
    console.print(f"Annotator [bold]{ann.email}[/] created (user id {ann.user_id}).")
    console.print(f"They log in at [bold]{login}[/] with e-mail {ann.email} and password [bold]{ann.password}[/]")
    console.print("Hand the password over privately; it is not stored by kdh. In Label Studio they open the "
                  "project and press [bold]Label All Tasks[/] (not the task table: see docs/labelstudio.md).")


def _say_which_server(job_dir: Path) -> None:
    """Tell the lead when KDH_LS_URL overrides the client instance the job records."""
    import os

    from kdh_ai.labelstudio.hub import job_client

    client = job_client(job_dir)
    if client and os.environ.get("KDH_LS_URL"):
        err_console.print(f"[yellow]note:[/] KDH_LS_URL is set, so kdh uses {os.environ['KDH_LS_URL']} and not "
                          f"client {client}'s instance that {job_dir} records. Unset KDH_LS_URL and KDH_LS_TOKEN to "
                          "use the client's instance.")


def push_cmd(
    job_dir: Annotated[Path, typer.Argument(help="The job directory (after `kdh prelabel`).")],
    project: Annotated[Optional[str], typer.Option(help="Project title. [default: the job folder's name]")] = None,
    project_id: Annotated[Optional[int], typer.Option(help="Attach the job to this existing project.")] = None,
    max_confidence: Annotated[Optional[float], typer.Option(help="Send only items whose model confidence is "
                                                            "below this (until routing exists).")] = None,
    control_share: Annotated[float, typer.Option(help="Share of human items sent without a pre-annotation "
                                                 "(to measure the time pre-labels save).")] = 0.1,
    overlap: Annotated[float, typer.Option(help="Share of items done by several annotators (agreement).")] = 0.1,
    overlap_k: Annotated[int, typer.Option(help="Annotators per overlap item (>= 2).")] = 2,
    gold: Annotated[Optional[Path], typer.Option(help="Gold manifest (CSV/JSONL: item_id, answer[, path|text]); "
                                                 "answers stay in the job directory.")] = None,
    gold_from_job: Annotated[Optional[Path], typer.Option(help="Take gold from an earlier, pulled job (its gold "
                                                          "and its items whose annotators agreed).")] = None,
    gold_rate: Annotated[float, typer.Option(help="Target share of gold in each annotator's stream.")] = 0.05,
    gold_overlap: Annotated[Optional[int], typer.Option(help="Annotators per gold item. [default: all]")] = None,
    guidelines: Annotated[Optional[Path], typer.Option(help="Guidelines for annotators (.md or .html), shown "
                                                     "before labelling. [default: the task type's guideline, "
                                                     "docs/guidelines/TASK.md]")] = None,
    labels: Annotated[Optional[str], typer.Option(help="Comma-separated labels (classification).")] = None,
    audio: Annotated[str, typer.Option(help="auto | local | upload: how audio reaches Label Studio.")] = "auto",
    limit: Annotated[Optional[int], typer.Option(help="Send at most N new items now.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of role assignment and gold positions.")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
    client: Annotated[Optional[str], typer.Option("--client", help="The client this job belongs to: its instance on "
                                                  "the hub (recorded in job.json; pull and status then find it "
                                                  "alone).")] = None,
) -> None:
    """Send the job's items meant for humans to Label Studio, with the model's pre-annotations.

    Idempotent: pushing again sends only new items, never a duplicate. Interrupted or the server failed?
    Run the same command again.
    """
    from kdh_ai.job import Job
    from kdh_ai.labelstudio.gold import add_gold, gold_from_job as take_gold, read_gold_manifest
    from kdh_ai.labelstudio.push import PushOptions, push

    opts = PushOptions(project=project, project_id=project_id, max_confidence=max_confidence,
                       control_share=control_share, overlap_fraction=overlap, overlap_k=overlap_k,
                       gold_rate=gold_rate, gold_overlap=gold_overlap, guidelines=guidelines,
                       labels=tuple(x.strip() for x in labels.split(",") if x.strip()) if labels else None,
                       audio=audio, limit=limit, seed=seed)  # type: ignore[arg-type]
    if client is not None:
        from kdh_ai.labelstudio.hub import set_job_client

        set_job_client(job_dir, client)
    _say_which_server(job_dir)
    if gold or gold_from_job:
        job = Job(job_dir)
        if not job.manifest_path.exists():
            raise fail(f"{job.root} is not a job directory (no job.json); run `kdh prelabel` first")
        found, issues = read_gold_manifest(gold) if gold else ([], [])
        if gold_from_job:
            found += take_gold(gold_from_job)
        with job:
            added, more = add_gold(job, found)
        for msg in issues + more:
            err_console.print(f"[yellow]gold:[/] {msg}")
        console.print(f"Gold: {added} answers added to {job.root / 'gold.jsonl'} (never sent to Label Studio).")
    res = push(job_dir, opts, log_progress=progress)
    table = Table(title=f"push: project {res.project_id}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("new tasks", f"{res.total_created}  " + ", ".join(f"{k} {v}" for k, v in sorted(res.created.items())))
    table.add_row("already in Label Studio", str(res.already))
    if res.adopted:
        table.add_row("recovered from an interrupted push", str(res.adopted))
    for reason, n in sorted(res.skipped.items()):
        table.add_row(f"not sent: {reason}", str(n))
    table.add_row("overlap set on", f"{res.overlap_set} tasks (gold tasks go to {res.gold_overlap} annotators)")
    table.add_row("audio", res.audio_mode)
    table.add_row("time", f"{res.wall_s:.1f} s (import {res.import_s:.1f} s)")
    console.print(table)
    for msg in res.issues:
        err_console.print(f"[red]{msg}[/]")
    console.print(f"Annotators work at [bold]{res.project_url}[/] (Label All Tasks).")
    if res.issues:
        raise typer.Exit(1)


def pull_cmd(job_dir: Annotated[Path, typer.Argument(help="A pushed job directory.")]) -> None:
    """Bring new, edited and deleted annotations from Label Studio into JOB_DIR/annotations.jsonl."""
    from kdh_ai.labelstudio.pull import pull

    _say_which_server(job_dir)
    res = pull(job_dir)
    console.print(f"Pulled project {res.project_id}: {res.tasks_seen} annotated tasks, {res.annotations_seen} "
                  f"annotations: [bold]{res.new} new, {res.changed} changed, {res.deleted} deleted[/], "
                  f"{res.unchanged} unchanged ({res.wall_s:.1f} s).")
    if res.unknown_items:
        err_console.print(f"[yellow]{res.unknown_items} annotated tasks carry no item_id (not pushed by kdh); "
                          "left out.[/]")
    _print_qualification(job_dir, only_held=True)


def _print_qualification(job_dir: Path, *, only_held: bool = False) -> None:
    """Whether qualification is enforced and whose answers are kept apart (:mod:`kdh_ai.qualify`)."""
    from kdh_ai.qualify import read_held

    held = read_held(job_dir)
    if only_held and not held.total:
        return
    style = "red" if held.total else ("yellow" if not held.enforced else "green")
    for line in held.lines():
        console.print(f"[{style}]{line}[/]")


def _date(value: Optional[str]) -> Optional[datetime]:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD or an ISO time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def status_cmd(
    job_dir: Annotated[Path, typer.Argument(help="A pushed job directory.")],
    pull_first: Annotated[bool, typer.Option("--pull/--no-pull", help="Pull annotations first.")] = True,
    since: Annotated[Optional[str], typer.Option(help="Per-annotator work from this date (pay period).")] = None,
    until: Annotated[Optional[str], typer.Option(help="... up to (not including) this date.")] = None,
    cap_minutes: Annotated[float, typer.Option(help="Cap per annotation for 'hours capped'.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """What is pending and done, per annotator (items, hours from lead_time), and when the batch will be done.

    With the server down (exit code 4) it shows the state of the last pull.
    """
    import dataclasses

    from kdh_ai.labelstudio.pull import pull
    from kdh_ai.labelstudio.status import job_status
    from kdh_ai.qualify import read_held

    from kdh_ai.labelstudio.client import LabelStudioUnavailable

    down = False
    _say_which_server(job_dir)
    if pull_first:
        try:
            pull(job_dir)
        except LabelStudioUnavailable as exc:
            down = True  # exit code 4 once the last pull's state is shown
            err_console.print(f"[yellow]warning:[/] {exc}\nShowing the state of the last pull.")
    st = job_status(job_dir, since=_date(since), until=_date(until), lead_time_cap_s=cap_minutes * 60)
    if st.project_id is None:
        raise fail(f"{job_dir} was never pushed to Label Studio. Next: {st.next_step}")
    if as_json:
        d = dataclasses.asdict(st)
        d["eta"] = st.eta.isoformat() if st.eta else None
        d["remaining"] = st.remaining
        d["qualification"] = dataclasses.asdict(read_held(job_dir))
        console.print_json(json.dumps(d, default=str))
        if down:
            raise typer.Exit(4)
        return
    head = Table(title=f"job {Path(job_dir).name}: project {st.project_id} on {st.url}", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("tasks", f"{st.tasks} (" + ", ".join(f"{k} {v}" for k, v in sorted(st.tasks_by_role.items())) + ")")
    head.add_row("done / started / not started", f"{st.tasks_done} / {st.tasks_started} / "
                 f"{st.tasks - st.tasks_done - st.tasks_started}")
    head.add_row("annotations done / needed", f"{st.annotations_done} / {st.annotations_needed} "
                 f"({st.remaining} to go)")
    rate = f"{st.rate_per_hour:.1f} annotations/hour" if st.rate_per_hour else "no recent work"
    head.add_row("recent rate", rate)
    head.add_row("estimated finish", st.eta.strftime("%Y-%m-%d %H:%M UTC") if st.eta else "unknown (no recent work)")
    head.add_row("last pull", str(st.last_pull_at))
    if st.second_opinion:
        head.add_row("second opinion", f"{st.second_opinion} (routing scores: confidence x agreement with it)")
    console.print(head)
    period = f" from {since or 'start'} to {until or 'now'}" if since or until else ""
    people = Table(title=f"per annotator{period}")
    for col in ("annotator", "items", "skipped", "gold", "hours", f"capped {cap_minutes:.0f}m", "last active"):
        people.add_column(col, justify="left" if col in ("annotator", "last active") else "right")
    for s in st.per_annotator:
        people.add_row(str(s.email or s.annotator_id), str(s.items), str(s.skipped), str(s.gold), f"{s.hours:.2f}",
                       f"{s.hours_capped:.2f}", (s.last_at or "")[:16].replace("T", " "))
    console.print(people)
    _print_qualification(job_dir)
    console.print(f"[bold]Next:[/] {st.next_step}")
    if down:
        raise typer.Exit(4)


def register(root: typer.Typer, *, labelstudio_name: str = "labelstudio") -> None:
    """Add ``labelstudio`` (group), ``push``, ``pull`` and ``status`` to the root ``kdh`` app."""
    root.add_typer(app, name=labelstudio_name)
    commands: dict[str, Callable[..., None]] = {"push": push_cmd, "pull": pull_cmd, "status": status_cmd}
    for name, fn in commands.items():
        root.command(name)(fn)
