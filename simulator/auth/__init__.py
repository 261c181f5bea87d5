"""Authentication of callers by API key, and what each caller may see and ask for. No Flask here.

- `keys` — `KeyRing`: issue, verify, list, revoke and seed API keys, kept in the store only as keyed hashes.
- `throttle` — `FailureThrottle`: a client that keeps sending wrong keys is refused for a while.
- `access` — `Caller`: who is asking (a key's user, the admin, or an unauthenticated client in open mode),
  whose jobs it may see, and the user and role a submission runs as.
"""
