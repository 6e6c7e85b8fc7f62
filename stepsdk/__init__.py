"""stepsdk: record every step of an AI agent run into Supabase or a local backup."""

__version__ = "0.1.0"
