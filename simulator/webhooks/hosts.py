"""WEBHOOK_ALLOWED_HOSTS: the destinations a webhook may be sent to.

The setting is a comma-separated list of entries: a host name (`localhost`, `hooks.example.com`), a host
name pattern (`*.example.com`: any subdomain), an IP address (`127.0.0.1`, `::1`) or network
(`127.0.0.0/8`, `10.0.0.0/8`), or `*` for anywhere. The default allows loopback only. A URL's host is
matched as written: names are compared as names (no DNS lookup), addresses against the networks.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_ALLOWED_HOSTS = "localhost,127.0.0.0/8,::1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowedHosts:
    """The parsed setting: names, `*.` suffixes, networks, or anywhere."""

    anywhere: bool
    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[Network, ...]

    def allows(self, host: str) -> bool:
        """Tell whether a URL's host (a name or an address, without brackets) is allowed."""
        if self.anywhere:
            return True
        host = host.lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)
        return any(address in network for network in self.networks)


@lru_cache(maxsize=16)
def parse_allowed_hosts(text: str) -> AllowedHosts:
    """Parse the setting, or raise ValueError naming the entry that is not a name, address or network."""
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[Network] = []
    anywhere = False
    entries = [entry.strip().lower() for entry in text.split(",")]
    if not any(entries):
        raise ValueError("must list at least one host, network or '*'")
    for entry in entries:
        if not entry:
            continue
        if entry == "*":
            anywhere = True
        elif entry.startswith("*.") and _is_name(entry[2:]):
            suffixes.append(entry[1:])
        elif _is_name(entry):
            names.add(entry.rstrip("."))
        else:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not a host name, '*.domain', an IP address or network, or '*'"
                ) from None
    return AllowedHosts(anywhere, frozenset(names), tuple(suffixes), tuple(networks))


def check_allowed_hosts(text: str) -> str:
    """Validate the setting's text (for its declaration); return it unchanged."""
    parse_allowed_hosts(text)
    return text


def _is_name(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return all(label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
               for label in labels) and not text.replace(".", "").isdigit()


def check_destination(url: str, allowed: AllowedHosts) -> str | None:
    """Return why `url` may not receive webhooks (None when it may): an http(s) URL to an allowed host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"is not a valid URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    if port == 0:
        return "must not use port 0"
    if not allowed.allows(parts.hostname):
        return (f"points to {parts.hostname}, which WEBHOOK_ALLOWED_HOSTS does not allow "
                "(default: loopback only; see the README's Webhooks section)")
    return None
