-- stepsdk: sensitive data (issue #15).
--   1. Encrypted screenshots of sensitive screens (<sha[0:2]>/<sha>.enc, AES-256-GCM ciphertext made
--      on the client, stepsdk/_sensitive.py) are uploaded as application/octet-stream: allow it in
--      the private step-screenshots bucket.
--   2. audit_log: who deleted, cleaned up, imported, exported or decrypted what, when and how many.
--      Service role only: row level security on and no policy, nothing granted to anon or
--      authenticated (users cannot read or write it, even their own entries).
-- Additive; safe to apply twice and on a live project.

update storage.buckets
   set allowed_mime_types = array_append(allowed_mime_types, 'application/octet-stream')
 where id = 'step-screenshots'
   and allowed_mime_types is not null
   and not ('application/octet-stream' = any (allowed_mime_types));

create table if not exists public.audit_log (
    id          bigint generated always as identity primary key,
    at          timestamptz not null default now(),
    actor       text not null check (char_length(actor) between 1 and 200),  -- key role or OS user
    action      text not null check (action in ('delete', 'cleanup', 'import', 'export', 'decrypt')),
    target      text check (target is null or char_length(target) <= 2000),   -- what: task, file, folder
    count       integer not null default 0 check (count >= 0),                -- how many rows/objects
    host        text check (host is null or char_length(host) <= 255),
    detail      jsonb not null default '{}'::jsonb check (jsonb_typeof(detail) = 'object')
);

comment on table public.audit_log is
    'stepsdk audit log: deletions, cleanups, imports, exports and decryptions. Service role only (no RLS policy).';

create index if not exists audit_log_at_idx on public.audit_log (at desc);

alter table public.audit_log enable row level security;
-- Append-only, even for the service role: entries are added and read, never changed or removed
-- (a cleanup cannot erase its own trace). Default privileges some projects have are revoked.
revoke all on public.audit_log from public, anon, authenticated, service_role;
grant select, insert on public.audit_log to service_role;
