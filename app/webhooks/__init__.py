"""Outbound webhooks: a user's endpoints hear when their generations and fine-tunes end.

- `targets`: which URLs may be called (SSRF rules), checked at registration and at every send;
- `signing`: the `ImageBooth-Signature` header (Stripe's scheme);
- `events`: written by the job layer in the transaction that ends a job (an outbox row per
  endpoint), so an event exists exactly when the final state does;
- `delivery`: what the worker's delivery loop runs: claim due deliveries, send, record the
  attempt, back off; `sender`: one HTTP POST to a checked, pinned address.
"""
