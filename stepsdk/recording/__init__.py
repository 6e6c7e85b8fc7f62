"""The recording pipeline behind `StepTracker`: three stages (journal, screenshots, upload) that
share one `Progress` (docs/architecture.md draws it). Internal: the public API is `stepsdk`."""
