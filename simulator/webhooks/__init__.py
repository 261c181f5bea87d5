"""Webhooks: events written to an outbox with the job's final transition, signed, delivered at least once.

- `hosts` — WEBHOOK_ALLOWED_HOSTS: where a webhook may be sent (loopback only by default).
- `events` — the events of a finished job (HeyGen's `video_translate.*`, the native `job.*`) and the outbox
  observer that turns them into deliveries inside the engine's store transaction.
- `signing` — Standard Webhooks headers (the `standardwebhooks` package) and HeyGen's hex HMAC-SHA256.
- `schedule` — when a failed delivery is tried again: the Standard Webhooks schedule, scaled, with jitter.
- `sender` — one HTTP POST with a timeout, no redirects and a bounded read of the answer.
- `deliverer` — the thread that sends due deliveries and records what happened (started by main).

Nothing here imports Flask.
"""
