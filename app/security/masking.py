"""Masking credentials before they are written anywhere people read: request headers and URLs in the job log."""
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
SECRET_WORDS = ("token", "secret", "password", "passwd", "pwd", "key", "auth", "credential", "signature", "session")


def looks_secret(name: str) -> bool:
    """Whether a header or query field name suggests its value is a credential."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or any(word in lowered for word in SECRET_WORDS)


def mask_headers(headers: dict) -> dict:
    """The headers with every credential's value replaced by ***."""
    return {name: MASK if looks_secret(str(name)) else value for name, value in headers.items()}


def mask_url(url: str) -> str:
    """The URL with its user:password and the values of secret-looking query fields replaced by ***."""
    try:
        parts = urlsplit(url)
        hostinfo = parts.netloc.rpartition("@")
    except ValueError:
        return url
    netloc = f"{MASK}@{hostinfo[2]}" if hostinfo[1] else parts.netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(looks_secret(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='')}={MASK if looks_secret(name) else quote(value, safe='')}"
                for name, value in pairs
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
