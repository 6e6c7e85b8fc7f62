"""Sharing a recorded run and speaking the formats of the tools around us (``stepsdk export
--format html|gif|webp|mp4|otlp|trajectories``, ``stepsdk view run.zip``).

- :mod:`stepsdk.share.run`: one task with its steps, screenshot rows and image bytes, read
  through an export source (Supabase or the backup), and the action overlay in image pixels;
- :mod:`stepsdk.share.html_report`: a single self-contained HTML file;
- :mod:`stepsdk.share.animation`: GIF / animated WebP (Pillow) and MP4 (``imageio-ffmpeg``);
- :mod:`stepsdk.share.otlp`: an OpenTelemetry trace (GenAI semantic conventions) over OTLP/HTTP;
- :mod:`stepsdk.share.trajectories`: step-level JSONL for GUI-agent training, images beside it.

Nothing here is imported by the recorder: ``record_step`` never pays for it.
"""
