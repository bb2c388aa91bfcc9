"""Steps that steer a run without leaving the worker: noop, log, condition, wait and fail."""
from datetime import timedelta

from app.engine.expressions import check_expression, evaluate
from app.engine.steps import StepFailure, StepResult, StepType, require_text
from app.vocabulary import LOG_LEVELS, LogLevel
MAX_RECORD_KEY = 120
MAX_WAIT_SECONDS = 30 * 86400


class NoopStep(StepType):
    name = "noop"

    def execute(self, settings, env):
        return StepResult(output={})


class LogStep(StepType):
    name = "log"

    def validate(self, settings):
        errors = require_text(settings, "message")
        if settings.get("level", LogLevel.INFO.value) not in LOG_LEVELS:
            errors.append(("level", f"must be one of {', '.join(LOG_LEVELS)}"))
        if "record_key" in settings and not isinstance(settings["record_key"], (str, int)):
            errors.append(("record_key", "must be text, such as \"{{ record.key }}\" or \"INV-{{ params.number }}\""))
        if "meta" in settings and not isinstance(settings["meta"], dict):
            errors.append(("meta", "must be an object of names and values, searchable as name:value"))
        return errors

    def execute(self, settings, env):
        level = settings.get("level", LogLevel.INFO.value)
        message = str(settings["message"])
        output = {"level": level, "message": message}
        meta = settings.get("meta")
        if meta is not None:
            if not isinstance(meta, dict):
                raise StepFailure("LOG_META", "meta must render to an object of names and values")
            output["meta"] = meta
        record_key = settings.get("record_key")
        if record_key is not None and str(record_key).strip():
            record_key = str(record_key).strip()[:MAX_RECORD_KEY]
            output["record_key"] = record_key
        else:
            record_key = None
        return StepResult(output=output, logs=[(level, message, meta)], record_key=record_key)


class ConditionStep(StepType):
    name = "condition"
    raw_settings = ("expression",)

    def validate(self, settings):
        errors = require_text(settings, "expression")
        if not errors:
            message = check_expression(settings["expression"])
            if message:
                errors.append(("expression", message))
        return errors

    def execute(self, settings, env):
        value = evaluate(settings["expression"], env.context)
        return StepResult(output={"value": value, "result": bool(value)}, branch="then" if value else "else")


class WaitStep(StepType):
    name = "wait"
    may_block = True

    def validate(self, settings):
        seconds = settings.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_WAIT_SECONDS:
            return [("seconds", f"must be a number of seconds between 0 and {MAX_WAIT_SECONDS}")]
        return []

    def execute(self, settings, env):
        seconds = float(settings["seconds"])
        until = env.now + timedelta(seconds=seconds)
        return StepResult(output={"seconds": seconds}, park_until=until)


class FailStep(StepType):
    name = "fail"

    def validate(self, settings):
        return require_text(settings, "code") + require_text(settings, "message")

    def execute(self, settings, env):
        raise StepFailure(str(settings["code"]), str(settings["message"]), settings.get("suggested_fix"))
