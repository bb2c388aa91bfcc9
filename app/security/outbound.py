"""The outbound address policy: where steps that connect somewhere (HTTP today, SQL and SMTP later) may go.

A host name is resolved once; every address it resolves to must be public (not loopback, link-local,
private, shared, unspecified, reserved or multicast, which covers cloud metadata endpoints) unless
FLOWDESK_OUTBOUND_ALLOW allows it. The caller connects to the address returned by `check`, never
to the name again, so a DNS answer that changes between the check and the connection (rebinding)
cannot slip past.
"""
import ipaddress
import posixpath
import socket
from dataclasses import dataclass, field
from urllib.parse import unquote

SETTING = "FLOWDESK_OUTBOUND_ALLOW"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundBlocked(Exception):
    """The policy refuses a destination; the message names the host and the setting that would allow it."""


class OutboundUnreachable(Exception):
    """The destination's name did not resolve; `detail` holds the resolver's own words for support."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


def _kind(address: Address) -> str | None:
    """Why an address is internal ("loopback", "private", ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name in ("unspecified", "loopback", "link_local", "multicast", "reserved"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    if address.is_private or not address.is_global:
        return "private"
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Exceptions to the rule that steps reach only public addresses."""

    hosts: frozenset[str] = frozenset()  # host names allowed on any port ("*.corp.example" matches subdomains)
    host_ports: frozenset[tuple[str, int]] = frozenset()  # (host name or address, port)
    networks: tuple[Network, ...] = field(default=())
    prefixes: frozenset[tuple[str, int, str]] = frozenset()  # (host, port, path prefix): only URLs under the path

    @classmethod
    def parse(cls, raw: str | None) -> "OutboundPolicy":
        """Read comma-separated host names, `host:port` pairs, `host:port/path` prefixes and CIDR ranges;
        ValueError names a bad entry."""
        hosts, host_ports, networks, prefixes = set(), set(), [], set()
        for entry in (e.strip() for e in (raw or "").split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            authority, slash, path = entry.partition("/")
            try:
                host, port = _split_host_port(authority)
            except ValueError:
                raise ValueError(f"{SETTING}: '{entry}' has no valid port") from None
            if not host or any(c in host for c in "/@ ?#[]") or (slash and port is None):
                raise ValueError(f"{SETTING}: '{entry}' is not a host name, host:port pair, host:port/path prefix "
                                 "or CIDR range")
            if slash:
                prefixes.add((host.lower(), port, "/" + path.strip("/")))
            elif port is None:
                hosts.add(host.lower())
            else:
                host_ports.add((host.lower(), port))
        return cls(frozenset(hosts), frozenset(host_ports), tuple(networks), frozenset(prefixes))

    def merged(self, other: "OutboundPolicy") -> "OutboundPolicy":
        return OutboundPolicy(self.hosts | other.hosts, self.host_ports | other.host_ports,
                              self.networks + other.networks, self.prefixes | other.prefixes)

    def _allows(self, host: str, port: int, address: Address, path: str) -> bool:
        if host in self.hosts or any(h.startswith("*.") and host.endswith(h[1:]) for h in self.hosts):
            return True
        if (host, port) in self.host_ports or (str(address), port) in self.host_ports:
            return True
        if any(h in (host, str(address)) and p == port and _under(path, prefix) for h, p, prefix in self.prefixes):
            return True
        return any(address in network for network in self.networks)

    def check(self, host: str, port: int, path: str = "/") -> str:
        """Resolve `host` and return the address to connect to, or raise OutboundBlocked / OutboundUnreachable.

        `path` (with its query) matters only for `host:port/path` entries, which allow URLs under that path.
        """
        host = host.lower().strip("[]")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise OutboundUnreachable(f"could not connect to {_display(host, port)}", f"{host}: {exc}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        for address in addresses:
            kind = _kind(address)
            if kind and not self._allows(host, port, address, path):
                shown = host if str(address) == host else f"{host} ({address})"
                raise OutboundBlocked(
                    f"{_display(host, port)} is refused: {shown} is a {kind} address, which steps may not reach. "
                    f"An administrator can allow it with {SETTING} (a host name, host:port or CIDR range)."
                )
        return str(addresses[0])


def _under(path: str, prefix: str) -> bool:
    """Whether a request path lies under `prefix`, with no `..` or `.` segment (even encoded) to climb out."""
    decoded = unquote(path.split("?", 1)[0].split("#", 1)[0])
    if not decoded.startswith("/") or posixpath.normpath(decoded) != decoded.rstrip("/") or "\\" in decoded:
        return False
    return decoded == prefix or decoded.startswith(prefix.rstrip("/") + "/")


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, _port(entry, rest[1:]) if rest.startswith(":") else None
    host, sep, port = entry.rpartition(":")
    if not sep or ":" in host:
        return entry, None
    return host, _port(entry, port)


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(entry)
    return int(text)


def _display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
