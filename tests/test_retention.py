"""Retention (H8): finished runs older than FLOWDESK_RETENTION_DAYS are deleted with their step runs and job
log, in small transactions, by a job the scheduler fires once a day or by `flask runs prune`; active runs and
recent ones stay, and a replay outlives its pruned source."""
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.config import ConfigError, load_config
from app.extensions import db, queues
from app.models import LogEntry, Run, StepRun
from jobs.scheduler import FlowdeskScheduler
from app.services.retention import prune_runs
from app.timeutil import utcnow
from tests.factories import make_run, steps_workflow, work_once

ACTIVE = ("pending", "running", "waiting", "waiting_for_approval")
FINISHED = ("completed", "failed", "cancelled", "rejected", "error")


@pytest.fixture
def workflow(load_workflow):
    return load_workflow(steps_workflow("nightly-sync", [{"key": "a", "type": "noop"}]))


def _days_ago(days: float):
    return utcnow() - timedelta(days=days)


def _stored(app) -> dict[int, tuple[int, int]]:
    """Every stored run id -> (its step runs, its log lines)."""
    with app.app_context():
        runs = db.session.scalars(sa.select(Run.id)).all()
        steps = Counter(db.session.scalars(sa.select(StepRun.run_id)).all())
        lines = Counter(db.session.scalars(sa.select(LogEntry.run_id)).all())
        db.session.rollback()
    assert set(steps) <= set(runs) and set(lines) <= set(runs), "step runs or log lines outlived their run"
    return {run_id: (steps[run_id], lines[run_id]) for run_id in runs}


def _prune(app, days: float, **options):
    with app.app_context():
        try:
            return prune_runs(db.session, timedelta(days=days), **options)
        finally:
            db.session.remove()


def _history(app, workflow):
    """Old finished runs of each status (one without a finish time), old active runs, and recent runs."""
    old = [make_run(app, workflow, status, finished_at=_days_ago(40), steps=2, lines={"info": 3, "error": 1})
           for status in FINISHED]
    old.append(make_run(app, workflow, "cancelled", queued_at=_days_ago(40), finished_at=None, steps=1, lines=2))
    active = [make_run(app, workflow, status, queued_at=_days_ago(45), steps=1, lines=2) for status in ACTIVE]
    recent = [make_run(app, workflow, "completed", finished_at=_days_ago(29), steps=2, lines=5),
              make_run(app, workflow, "failed", queued_at=_days_ago(60), finished_at=_days_ago(1), steps=3, lines=1)]
    return old, active, recent


def test_prune_deletes_old_finished_runs_with_their_steps_and_log_and_keeps_active_and_recent_runs(app, workflow):
    old, active, recent = _history(app, workflow)
    before = _stored(app)

    report = _prune(app, 30)

    assert (report.runs, report.step_runs, report.log_lines) == (6, 11, 22)
    assert not report.dry_run
    assert _stored(app) == {run_id: before[run_id] for run_id in active + recent}


def test_a_dry_run_deletes_nothing_and_counts_what_the_prune_then_deletes(app, workflow):
    _history(app, workflow)
    before = _stored(app)

    dry = _prune(app, 30, dry_run=True)

    assert dry.dry_run
    assert _stored(app) == before
    real = _prune(app, 30)
    assert (dry.runs, dry.step_runs, dry.log_lines) == (real.runs, real.step_runs, real.log_lines) == (6, 11, 22)


def test_active_runs_are_never_deleted_whatever_their_age(app, workflow):
    active = [make_run(app, workflow, status, queued_at=_days_ago(400), started_at=_days_ago(400), steps=1, lines=1)
              for status in ACTIVE]
    report = _prune(app, 1)
    assert report.runs == 0
    assert sorted(_stored(app)) == sorted(active)


@contextmanager
def _transactions(app):
    """Record, for each committed transaction, how many rows its DELETEs removed from each table."""
    done, current = [], Counter()

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        words = statement.split()
        if words[:2] == ["DELETE", "FROM"]:
            current[words[2]] += cursor.rowcount

    def on_commit(conn):
        if current:
            done.append(dict(current))
        current.clear()

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "after_cursor_execute", on_execute)
    sa.event.listen(engine, "commit", on_commit)
    try:
        yield done
    finally:
        sa.event.remove(engine, "after_cursor_execute", on_execute)
        sa.event.remove(engine, "commit", on_commit)


def test_prune_deletes_in_small_transactions_even_a_run_with_a_long_log(app, workflow):
    runs = [make_run(app, workflow, "completed", finished_at=_days_ago(10), steps=2, lines=3) for _ in range(4)]
    big = make_run(app, workflow, "failed", finished_at=_days_ago(10), steps=2, lines={"debug": 20, "error": 3})
    kept = make_run(app, workflow, "completed", finished_at=_days_ago(1), steps=1, lines=30)

    with _transactions(app) as transactions:
        report = _prune(app, 5, batch=2, chunk=5)

    assert (report.runs, report.step_runs, report.log_lines) == (5, 10, 35)
    assert sorted(_stored(app)) == [kept]
    assert sum(t.get("runs", 0) for t in transactions) == 5
    assert sum(t.get("log_entries", 0) for t in transactions) == 35
    # Three batches of at most two runs; the 23 lines of the big run took at least five transactions.
    assert len([t for t in transactions if "runs" in t]) == 3
    assert len([t for t in transactions if "log_entries" in t]) >= 3 + 23 // 5
    assert all(t.get("runs", 0) <= 2 and t.get("log_entries", 0) <= 5 and t.get("step_runs", 0) <= 4
               for t in transactions), transactions
    assert big not in _stored(app) and not set(runs) & set(_stored(app))


@pytest.mark.parametrize("batch", [1, 1000])
def test_a_replay_outlives_its_pruned_source_and_only_loses_its_link(app, workflow, batch):
    source = make_run(app, workflow, "failed", finished_at=_days_ago(50), steps=1, lines=2)
    replay = make_run(app, workflow, "completed", finished_at=_days_ago(2), steps=1, lines=2, replay_of_id=source)
    old_source = make_run(app, workflow, "failed", finished_at=_days_ago(60), steps=1, lines=2)
    old_replay = make_run(app, workflow, "completed", finished_at=_days_ago(59), replay_of_id=old_source)
    replay_of_old_replay = make_run(app, workflow, "completed", finished_at=_days_ago(58), replay_of_id=old_replay)

    report = _prune(app, 30, batch=batch)

    assert report.runs == 4
    assert sorted(_stored(app)) == [replay]
    with app.app_context():
        assert db.session.get(Run, replay).replay_of_id is None
    assert old_replay and replay_of_old_replay


def test_prune_command_prints_what_it_deleted(app, workflow):
    _history(app, workflow)
    cutoff = _days_ago(30)
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["runs", "prune", "--older-than", "30", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("Would delete 6 runs, 11 step runs and 22 log lines finished before ")
    assert f"{cutoff:%Y-%m-%d}" in dry.output and dry.output.rstrip().endswith("UTC")
    assert len(_stored(app)) == 12

    result = runner.invoke(args=["runs", "prune", "--older-than", "30"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Deleted 6 runs, 11 step runs and 22 log lines finished before ")
    assert len(_stored(app)) == 6
    again = runner.invoke(args=["runs", "prune", "--older-than", "30"])
    assert again.output.startswith("Deleted 0 runs, 0 step runs and 0 log lines finished before ")


def test_prune_command_separates_thousands_and_says_one_run(app, workflow):
    make_run(app, workflow, "completed", finished_at=_days_ago(3), steps=1, lines=1234)
    result = app.test_cli_runner().invoke(args=["runs", "prune", "--older-than", "2"])
    assert result.output.startswith("Deleted 1 run, 1 step run and 1,234 log lines finished before ")


@pytest.mark.parametrize("days", ["0", "-3", "abc", "1.5", ""])
def test_prune_command_refuses_days_that_are_not_a_positive_whole_number(app, workflow, days):
    make_run(app, workflow, "completed", finished_at=_days_ago(400))
    result = app.test_cli_runner().invoke(args=["runs", "prune", "--older-than", days])
    assert result.exit_code == 2
    assert "Invalid value for '--older-than'" in result.output
    assert len(_stored(app)) == 1


def test_prune_command_needs_older_than(app):
    result = app.test_cli_runner().invoke(args=["runs", "prune"])
    assert result.exit_code == 2 and "Missing option '--older-than'" in result.output


def test_retention_days_is_a_positive_whole_number_or_unset(monkeypatch):
    monkeypatch.delenv("FLOWDESK_RETENTION_DAYS", raising=False)
    assert load_config()["RETENTION_DAYS"] is None
    monkeypatch.setenv("FLOWDESK_RETENTION_DAYS", "90")
    assert load_config()["RETENTION_DAYS"] == 90
    for bad in ("0", "-1", "1.5", "ninety", "²"):
        monkeypatch.setenv("FLOWDESK_RETENTION_DAYS", bad)
        with pytest.raises(ConfigError, match="FLOWDESK_RETENTION_DAYS must be a whole number of days"):
            load_config()


def _scheduler(app, **attributes) -> FlowdeskScheduler:
    scheduler = FlowdeskScheduler(connection=queues.connection, interval=1, app=app)
    for name, value in attributes.items():
        setattr(scheduler, name, value)
    return scheduler


def _no_reconcile() -> dict:
    """Scheduler settings that keep the reconciler (test_reconcile.py) from enqueueing the old pending run."""
    return {"reconcile_every": 3600.0, "_last_reconcile": time.monotonic()}


def _retention_jobs(app) -> list:
    with app.app_context():
        return [job for job in queues.queue("default").get_jobs() if job.func_name == "jobs.maintenance.prune_runs"]


def test_the_scheduler_fires_retention_once_a_day_and_a_worker_runs_it(app, workflow, monkeypatch):
    monkeypatch.setitem(app.config, "RETENTION_DAYS", 30)
    old, active, recent = _history(app, workflow)
    before = _stored(app)

    with app.app_context():
        first, restarted, standby = (_scheduler(app, **_no_reconcile()) for _ in range(3))
        for _ in range(5):
            first.enqueue_jobs()
        restarted.enqueue_jobs()
        standby.enqueue_jobs()  # took the lock over
    jobs = _retention_jobs(app)
    assert [job.args for job in jobs] == [(30,)]

    work_once(app)
    assert _stored(app) == {run_id: before[run_id] for run_id in active + recent}
    assert _retention_jobs(app) == []
    with app.app_context():
        assert queues.queue("default").failed_job_registry.count == 0


def test_retention_fires_again_the_next_day(app, monkeypatch):
    monkeypatch.setitem(app.config, "RETENTION_DAYS", 7)
    with app.app_context():
        scheduler = _scheduler(app, retention_every=0.5)  # a short "day"
        scheduler.enqueue_jobs()
        scheduler.enqueue_jobs()
        assert len(_retention_jobs(app)) == 1
        time.sleep(0.6)
        scheduler.enqueue_jobs()
        scheduler.enqueue_jobs()
    assert [job.args for job in _retention_jobs(app)] == [(7,), (7,)]


def test_without_the_setting_the_scheduler_never_fires_retention(app, workflow, monkeypatch):
    monkeypatch.setitem(app.config, "RETENTION_DAYS", None)
    make_run(app, workflow, "completed", finished_at=_days_ago(4000))
    with app.app_context():
        scheduler = _scheduler(app, retention_every=0.01)
        for _ in range(3):
            scheduler.enqueue_jobs()
            time.sleep(0.02)
        assert queues.connection.get(scheduler.retention_key) is None
    assert _retention_jobs(app) == []
    assert len(_stored(app)) == 1


def test_finding_runs_to_prune_reads_the_status_and_finish_time_index(app, workflow):
    """Only old runs are read, however many recent ones there are: the search is a range of an index that leads with
    the status and then a time (ix_runs_status_finished_at; on a table this small PostgreSQL may as well take
    ix_runs_status_queued_at, which the runs lists' counts added)."""
    from app.services.retention import prunable

    for days in (40, 20, 10, 1):
        make_run(app, workflow, "completed", finished_at=_days_ago(days))
    query = sa.select(Run.id).where(prunable(_days_ago(30))).limit(1000)
    with app.app_context():
        sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a table this small would be read whole
                plan = conn.execute(sa.text(f"EXPLAIN {sql}")).scalars().all()
            else:
                plan = [row[-1] for row in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"))]
    assert any("ix_runs_status_finished_at" in line or "ix_runs_status_queued_at" in line for line in plan), plan
