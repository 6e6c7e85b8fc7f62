"""The local store: the backup journal and its reader (`backup.py`), the SQLite index that
the viewer, export and retention read (`index.py`), the export format and its CSV/XLSX writers."""
