"""What a worker does with a run.

claims.py     conditional UPDATEs: the claim of a pending or waiting run, and moves between statuses
journal.py    buffered step runs and log lines, one commit per checkpoint, the heartbeat, how a walk ends
at_once.py    on PostgreSQL, a walk's ending (the run's move, its new step runs and lines) in one statement
executor.py   claim, walk (app.engine.walker) and record (journal) a run; hand a parked run to rq-scheduler
queueing.py   the run jobs: names, ids, enqueue and schedule
lost.py       ending runs whose job died mid-run
warmup.py     a throw-away run a worker executes before it forks work horses
"""
