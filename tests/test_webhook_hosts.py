"""WEBHOOK_ALLOWED_HOSTS: which destinations a webhook may be sent to."""

from __future__ import annotations

import pytest

from simulator.webhooks.hosts import DEFAULT_ALLOWED_HOSTS, check_destination, parse_allowed_hosts


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://127.0.0.1:8080/hook", True),
    ("http://127.9.9.9/hook", True),
    ("http://localhost:9000/", True),
    ("http://LOCALHOST./", True),
    ("http://[::1]:9000/hook", True),
    ("https://example.com/hook", False),
    ("http://10.0.0.5/hook", False),
    ("http://169.254.169.254/latest/meta-data", False),
    ("http://localhost.evil.com/", False),
])
def test_the_default_allows_loopback_only(url: str, allowed: bool) -> None:
    """By default only loopback names and addresses may receive webhooks."""
    assert (check_destination(url, parse_allowed_hosts(DEFAULT_ALLOWED_HOSTS)) is None) is allowed


def test_names_patterns_networks_and_anywhere() -> None:
    """Entries match exact names, subdomains of a `*.` pattern, addresses in a network, or anything for `*`."""
    hosts = parse_allowed_hosts("hooks.example.com, *.internal.test, 10.1.0.0/16")
    assert hosts.allows("hooks.example.com")
    assert not hosts.allows("other.example.com")
    assert hosts.allows("a.b.internal.test") and not hosts.allows("internal.test")
    assert hosts.allows("10.1.200.3") and not hosts.allows("10.2.0.1")
    assert parse_allowed_hosts("*").allows("anything.example")


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://127.0.0.1/hook", "http:// or https://"),
    ("http:///hook", "http:// or https://"),
    ("http://user:pw@127.0.0.1/hook", "user name or password"),
    ("http://127.0.0.1:99999/hook", "not a valid URL"),
    ("http://127.0.0.1:0/hook", "port 0"),
    ("http://example.com/hook", "WEBHOOK_ALLOWED_HOSTS"),
])
def test_a_refused_destination_says_why(url: str, why: str) -> None:
    """A URL that may not receive webhooks gets a reason naming what is wrong."""
    reason = check_destination(url, parse_allowed_hosts(DEFAULT_ALLOWED_HOSTS))
    assert reason is not None and why in reason
