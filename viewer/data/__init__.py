"""Data sources of the viewer: one interface (base.DataSource), a backup and a Supabase source."""
