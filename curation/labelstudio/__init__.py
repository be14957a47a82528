"""Label Studio round trips: a local server, labeling configs per sample kind, push tasks, pull verdicts."""
