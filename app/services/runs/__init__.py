"""Use cases on runs: start, cancel, retry, replay and approvals."""
from app.services.runs.approvals import (
    Decision, DecisionResult, decide, expire_approval, refusal, waiting_approval,
)
from app.services.runs.cancel import CancelOutcome, CancelResult, cancel_run
from app.services.runs.replay import REPLAYABLE, ReplayPlan, parse_at, plan_replay, replay_refusal, replay_run
from app.services.runs.retry import RetryPlan, plan_retry, retry_run, retry_step
from app.services.runs.start import MAX_RECORD_KEY, check_record, definition_of, start_run

__all__ = [
    "Decision", "DecisionResult", "decide", "expire_approval", "refusal", "waiting_approval",
    "MAX_RECORD_KEY", "REPLAYABLE", "CancelOutcome", "CancelResult", "ReplayPlan", "RetryPlan", "cancel_run",
    "check_record", "definition_of", "parse_at", "plan_replay", "plan_retry", "replay_refusal",
    "replay_run", "retry_run", "retry_step", "start_run",
]
