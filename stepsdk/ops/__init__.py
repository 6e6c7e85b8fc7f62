"""Operations on recorded data, shared by the CLI and the viewer: resync, export, import,
retention and delete, alerts, statistics, audit, the shipped schema (`migrations.py`, `db_check.py`)."""
