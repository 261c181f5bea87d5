"""HeyGen's video-translation API, as HeyGen documents it, over the simulator's jobs. No Flask here.

- `languages` — the target languages the routes accept (HeyGen's names) and the tags the result files get.
- `requests` — the bodies of `POST /v2/video_translate` and `POST /v3/video-translations`, checked field by
  field; an `InvalidParameter` names the field at fault (HeyGen's `param`).
- `views` — a job as HeyGen's v2 and v3 status routes and its `video_translate.*` webhooks show it.
- `replays` — v3's Idempotency-Key: the first answer replayed for 24 hours, 409 while the first is in flight.

Docs followed (cited in the README): docs.heygen.com/docs/video-translate-api, /reference/video-translate-status
and /reference/errors (v2); developers.heygen.com/reference/create-video-translation, /docs/video-translate and
/docs/error-codes (v3); docs.heygen.com/docs/using-heygens-webhook-events and /reference/add-a-webhook-endpoint
(webhooks).
"""
