"""Where rows go: the `Sink` seam (`sink.py`), the one upload algorithm shared by the live
upload stage and `stepsdk resync` (`uploader.py`). The Supabase sink is `stepsdk.backend.supabase_sink`,
the retry policy and circuit breaker `stepsdk.backend.retry`."""
