"""``python -m tests.supabase_local``: the old name of ``python -m supabase_local``."""

from supabase_local.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
