"""Demo mode only: a small sandbox HTTP API that the demo workflows call, so they run with no internet."""
import hashlib
import time
from datetime import date, timedelta

from flask import Blueprint, jsonify, request

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")

CUSTOMERS = ["Acme Ltd", "Birch & Co", "Cobalt Foods", "Delta Freight", "Elm Street Dental", "Fjord Outfitters"]
SITES = {"north": ["Ana", "Ben", "Cleo", "Dev"], "south": ["Eli", "Fay", "Gus"], "east": ["Hana", "Ivo", "Jun", "Kai"]}


def _n(*parts) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


@bp.get("/health")
def health():
    """Answer that the sandbox is up."""
    return jsonify({"status": "ok", "time": time.time()})


@bp.get("/invoices")
def invoices():
    """Invoices issued since a date (deterministic sample data)."""
    since_raw = request.args.get("since", "")
    try:
        since = date.fromisoformat(since_raw)
    except ValueError:
        return jsonify({"error": f"since must be a date like 2026-01-31, got '{since_raw}'"}), 400
    limit = request.args.get("limit", 100, type=int)
    today = date.today()
    rows = []
    day = max(since, today - timedelta(days=60))
    while day <= today and len(rows) < limit:
        for i in range(_n(day) % 3):
            customer = CUSTOMERS[_n(day, i) % len(CUSTOMERS)]
            rows.append({"number": f"INV-{day:%y%m%d}-{i + 1}", "customer": customer, "issued": day.isoformat(),
                         "amount": round((_n(day, i, "amt") % 90000) / 100 + 50, 2), "currency": "EUR"})
        day += timedelta(days=1)
    return jsonify(rows[:limit])


@bp.post("/ledger")
def ledger():
    """Accept a batch of invoices into the sandbox ledger."""
    body = request.get_json(silent=True) or {}
    count = int(body.get("count", 0))
    return jsonify({"accepted": count, "batch": f"LB-{_n(time.time()) % 100000:05d}"}), 201


@bp.get("/attendance")
def attendance():
    """Attendance rows for a site and a day."""
    site = request.args.get("site", "")
    if site not in SITES:
        return jsonify({"error": f"unknown site '{site}'"}), 404
    day = request.args.get("day", date.today().isoformat())
    rows = [{"person": p, "site": site, "day": day, "present": _n(p, day) % 5 != 0} for p in SITES[site]]
    return jsonify(rows)


@bp.post("/mailer/send")
def mailer_send():
    """The sandbox mail relay: it knows only the 'reminder-v1' template."""
    body = request.get_json(silent=True) or {}
    template = body.get("template")
    if template != "reminder-v1":
        return jsonify({"error": f"template '{template}' does not exist on the mail relay",
                        "known_templates": ["reminder-v1"]}), 422
    return jsonify({"queued": len(body.get("to", []))}), 202


@bp.get("/slow")
def slow():
    """Answer after a delay (at most 10 s): for trying cancel on a running run."""
    seconds = min(max(request.args.get("seconds", 1.0, type=float), 0.0), 10.0)
    time.sleep(seconds)
    return jsonify({"slept": seconds})


@bp.route("/echo", defaults={"rest": ""}, methods=["GET", "POST"])
@bp.route("/echo/<path:rest>", methods=["GET", "POST"])
def echo(rest: str):
    """Say what request arrived: the path and query exactly as sent, the Host header and the query fields."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    return jsonify({"raw_uri": raw, "host": request.host, "args": request.args.to_dict(flat=False)})


@bp.get("/redirect")
def redirect_elsewhere():
    """Answer with a redirect to `to`: steps must not follow it."""
    return "", 302, {"Location": request.args.get("to", "/sandbox/health")}
