"""Check runs as background jobs: the queue in the state database, a run split into shard units, the worker, engines."""
