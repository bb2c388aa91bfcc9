"""The http_request step: one request, to an address the outbound policy checked, with no redirects followed."""
import base64
import json
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError, ReadTimeoutError

from app.engine.steps import StepFailure, StepResult, StepType, require_text
from app.security.masking import mask_headers, mask_url
from app.security.outbound import OutboundBlocked, OutboundUnreachable
from app.vocabulary import LogLevel

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
MAX_TEXT = 100_000
MAX_BODY = 10 * 1024 * 1024  # bytes read from an answer; the rest is dropped
LOGGED_BODY = 2048  # characters of an answer's body in the technical log line
GENERIC_FIX = "Check the request's URL, parameters and credentials against the service's answer."
MESSAGE_FIELDS = ("error", "message", "detail", "error_description", "title", "reason")
VALUES_WORDS = ("known", "valid", "allowed", "options", "accepted", "supported", "choices")
DEFAULT_PORTS = {"http": 80, "https": 443}
UNREACHABLE_FIX = ("Check the URL and that the service is reachable from the workers; support staff see the exact "
                   "network error in the job log.")


class HttpRequestStep(StepType):
    name = "http_request"
    may_block = True
    url_settings = ("url",)

    def validate(self, settings):
        errors = require_text(settings, "url")
        if str(settings.get("method", "GET")).upper() not in HTTP_METHODS:
            errors.append(("method", f"must be one of {', '.join(HTTP_METHODS)}"))
        if "headers" in settings and not isinstance(settings["headers"], dict):
            errors.append(("headers", "must be an object of header names and values"))
        timeout = settings.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or not 0 < timeout <= 300):
            errors.append(("timeout", "must be a number of seconds between 0 and 300"))
        return errors

    def execute(self, settings, env):
        method = str(settings.get("method", "GET")).upper()
        url = str(settings["url"])
        shown = mask_url(url)
        timeout = float(settings.get("timeout") or env.http_timeout)
        target = _Target.parse(method, url)
        try:
            address = env.outbound.check(target.host, target.port, target.path)
        except OutboundBlocked as exc:
            raise StepFailure(
                "HTTP_BLOCKED", f"{method} {shown}: {exc}",
                "Use a public address, or ask an administrator to allow this destination.",
            ) from None
        except OutboundUnreachable as exc:
            raise StepFailure("HTTP_CONNECTION", f"{method} {shown}: {exc}", UNREACHABLE_FIX, exc.detail) from None
        headers = {"Host": target.host_header, **target.auth_header}
        headers.update({str(k): str(v) for k, v in (settings.get("headers") or {}).items()})
        body = None
        if "json" in settings:
            body = json.dumps(settings["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        elif "body" in settings:
            body = str(settings["body"]).encode()
        started = time.monotonic()
        try:
            status, reason, answer_headers, raw, truncated = _send(target, address, method, body, headers, timeout)
        except ReadTimeoutError:
            raise StepFailure(
                "HTTP_TIMEOUT", f"{method} {shown} did not answer within {timeout:g} s",
                "Check that the service is up, or raise the step's timeout.",
                _exchange(method, shown, headers, None),
            ) from None
        except (HTTPError, OSError) as exc:
            raise StepFailure(
                "HTTP_CONNECTION", f"{method} {shown}: could not connect to {target.display}", UNREACHABLE_FIX,
                f"{method} {shown} ({address}): {type(exc).__name__}: {exc}",
            ) from None
        elapsed_ms = round((time.monotonic() - started) * 1000)
        text = _decode(raw, answer_headers.get("Content-Type", ""))
        output: dict[str, Any] = {"status": status, "headers": answer_headers, "text": text[:MAX_TEXT]}
        if len(text) > MAX_TEXT or truncated:
            output["text_truncated"] = True
        if "json" in answer_headers.get("Content-Type", "") and not truncated:
            parsed = _strict_json(text)
            if parsed is not _INVALID:
                output["json"] = parsed
        answer = (status, reason, answer_headers, text, elapsed_ms)
        exchange = _exchange(method, shown, headers, answer)
        if status >= 400 and settings.get("fail_on_error", True):
            raise StepFailure(
                f"HTTP_{status}", f"{method} {shown} answered {status} {reason}: {text[:300]}",
                suggested_fix(output.get("json")), exchange, output,
            )
        logs = [(LogLevel.INFO, f"{method} {shown} answered {status} in {elapsed_ms} ms", None)]
        technical = [(LogLevel.DEBUG, exchange, {"status": status})]
        return StepResult(output=output, logs=logs, technical_logs=technical)


def _exchange(method: str, shown_url: str, headers: dict, answer: tuple | None) -> str:
    """The request and its answer as support reads them: credentials masked, the body's first 2 KB."""
    lines = [f"Request: {method} {shown_url}"]
    lines += [f"  {name}: {value}" for name, value in mask_headers(headers).items()]
    if answer is None:
        lines.append("Response: none")
        return "\n".join(lines)
    status, reason, answer_headers, text, elapsed_ms = answer
    lines.append(f"Response: {status} {reason} in {elapsed_ms} ms".rstrip())
    lines += [f"  {name}: {value}" for name, value in mask_headers(answer_headers).items()]
    more = f" (first {LOGGED_BODY} of {len(text)} characters)" if len(text) > LOGGED_BODY else ""
    lines.append(f"Body{more}:")
    lines.append(text[:LOGGED_BODY])
    return "\n".join(lines)


def suggested_fix(answer) -> str:
    """A fix that quotes what the service said (its error message, the values it accepts) when it said so."""
    if not isinstance(answer, dict):
        return GENERIC_FIX
    parts = []
    for name in MESSAGE_FIELDS:
        said = answer.get(name)
        if isinstance(said, dict):
            said = said.get("message")
        if isinstance(said, str) and said.strip():
            parts.append(f'The service said: "{said.strip()[:300]}".')
            break
    for name, values in answer.items():
        if isinstance(values, list) and values and any(w in name.lower() for w in VALUES_WORDS):
            accepted = [str(v) for v in values if isinstance(v, (str, int, float))][:20]
            if accepted:
                parts.append(f"The service accepts: {', '.join(accepted)}. Change the step's settings or "
                             "parameters to one of these.")
                break
    if not parts:
        return GENERIC_FIX
    return " ".join(parts)


class _Target:
    """Where a URL points: scheme, host, port, the path with its query, and credentials it carries."""

    def __init__(self, scheme: str, host: str, port: int, path: str, auth_header: dict, display: str,
                 host_header: str):
        self.scheme, self.host, self.port, self.path = scheme, host, port, path
        self.auth_header, self.display, self.host_header = auth_header, display, host_header

    @classmethod
    def parse(cls, method: str, url: str) -> "_Target":
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise StepFailure("HTTP_BAD_URL", f"{method} {mask_url(url)}: the URL is malformed ({exc})",
                              "Check the step's URL.") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise StepFailure(
                "HTTP_BLOCKED", f"{method} {mask_url(url)}: only http and https URLs are allowed",
                "Start the URL with http:// or https://. A placeholder that supplies a whole URL must say so "
                "with the raw_url filter: {{ params.url | raw_url }}.",
            )
        if not parts.hostname:
            raise StepFailure("HTTP_BAD_URL", f"{method} {mask_url(url)}: the URL names no host",
                              "Check the step's URL.")
        host = parts.hostname
        port = port or DEFAULT_PORTS[scheme]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        auth = {}
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            auth = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        shown_host = f"[{host}]" if ":" in host else host
        host_header = shown_host if port == DEFAULT_PORTS[scheme] else f"{shown_host}:{port}"
        return cls(scheme, host, port, path, auth, f"{shown_host}:{port}", host_header)


def _send(target: _Target, address: str, method: str, body: bytes | None, headers: dict, timeout: float):
    """Send the request to the checked `address` (TLS still verifies the certificate for the host name)."""
    options: dict[str, Any] = {"timeout": urllib3.Timeout(total=timeout), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, target.port, server_hostname=target.host, assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(), **options,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, **options)
    try:
        response = pool.urlopen(method, target.path, body=body, headers=headers, redirect=False,
                                assert_same_host=False, preload_content=False)
        try:
            raw = response.read(MAX_BODY + 1, decode_content=True)
            answer_headers = {k: _clean(v) for k, v in response.headers.items()}
            return response.status, response.reason or "", answer_headers, raw[:MAX_BODY], len(raw) > MAX_BODY
        finally:
            response.release_conn()
    finally:
        pool.close()


def _decode(raw: bytes, content_type: str) -> str:
    charset = "utf-8"
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    return _clean(text)


def _clean(text: str) -> str:
    # NUL and lone surrogates cannot be stored in a PostgreSQL text or JSON value: replace them.
    if text.isascii():
        return text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


_INVALID = object()


def _strict_json(text: str):
    """Parse an answer as JSON, leaving out NaN and Infinity (not JSON, and not storable as JSON)."""

    def refuse(constant):
        raise ValueError(constant)

    try:
        value = json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return _INVALID
    return _cleaned(value)


def _cleaned(value):
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return None
    return value
