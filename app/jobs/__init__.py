"""The one job layer: every kind of job (generations, fine-tunes) lives the same life.

    queued --claim--> running --finish--> succeeded | failed | canceled
    queued | running --cancel (its owner)--> canceled
    running --reconciler (heartbeat stale)--> queued (again) | failed (too many tries)

- `kinds`: what differs per kind (table, task, queue, pacing); prices are app/credits/pricing.py's.
- `lifecycle`: the conditional transitions (web and worker); `outbox`: tasks sent after commit;
  `settlement`: credits settled once a job has ended, in a step of its own, retried until done.
- `running`: a worker's handle on a claimed job (heartbeat, progress, cancel check, outcome).
- `reconciler`: what the worker runs on a timer to repair lost messages, dead workers and
  unsettled jobs.
"""
