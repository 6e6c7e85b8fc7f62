-- stepsdk seed: a small, fixed data set for demos, the console queries and the tests.
--
-- `supabase db reset` loads it after the migrations (config.toml [db.seed]); or paste it into
-- the SQL console. Re-running it is harmless: every row has a fixed id and is upserted.
-- The tests assert exact numbers computed from the rows below, so change them together.
--
-- Five tasks on three UTC days, every step type, failures of two error types, and
-- screenshot rows where one object (path A) is shared by three tasks, as content addressing does:
--   seed-task-login-flow    phone-agent    success      2026-11-20 09:00:00Z  30 s   4 steps
--   seed-task-checkout      phone-agent    failed       2026-11-20 14:00:00Z  60 s   6 steps, 2 failed
--                           (owned by user a0000000-0000-4000-8000-000000000001, for RLS demos)
--   seed-task-search        browser-agent  running      2026-11-21 08:00:00Z   -     2 steps, 1 failed
--   seed-task-empty         phone-agent    success      2026-11-21 12:00:00Z   5 s   no steps
--   seed-task-old-report    browser-agent  interrupted  2026-10-01 10:00:00Z   5 min 4 steps, 1 failed
-- Screenshot objects (bucket step-screenshots; the seed does not upload the bytes, so the
-- viewer shows its "screenshot missing" placeholder for them):
--   A aa/aaaa…aaaa.webp 40000 B: login-flow, checkout, old-report
--   B bb/bbbb…bbbb.webp 52000 B: checkout
--   C cc/cccc…cccc.webp 30000 B: old-report

insert into public.tasks (task_id, title, description, agent, status, started_at, finished_at,
                          result, error_message, metadata, owner_id, created_at, updated_at)
values
    ('seed-task-login-flow', 'Log in to the shop app', 'Open the app and sign in with the test account',
     'phone-agent', 'success', '2026-11-20 09:00:00+00', '2026-11-20 09:00:30+00',
     'Signed in', null, '{"device": "emulator-5554", "model": "autoglm-phone-9b"}', null,
     '2026-11-20 09:00:00+00', '2026-11-20 09:00:30+00'),
    ('seed-task-checkout', 'Buy the blue mug', 'Add the blue mug to the cart and pay',
     'phone-agent', 'failed', '2026-11-20 14:00:00+00', '2026-11-20 14:01:00+00',
     null, 'Element not found: #pay', '{"device": "emulator-5554"}',
     'a0000000-0000-4000-8000-000000000001',
     '2026-11-20 14:00:00+00', '2026-11-20 14:01:00+00'),
    ('seed-task-search', 'Search flights to Lisbon', null,
     'browser-agent', 'running', '2026-11-21 08:00:00+00', null,
     null, null, '{}', null,
     '2026-11-21 08:00:00+00', '2026-11-21 08:00:04+00'),
    ('seed-task-empty', 'Check the battery level', 'Finished before recording any step',
     'phone-agent', 'success', '2026-11-21 12:00:00+00', '2026-11-21 12:00:05+00',
     'Battery 80%', null, '{}', null,
     '2026-11-21 12:00:00+00', '2026-11-21 12:00:05+00'),
    ('seed-task-old-report', 'Export the monthly report', null,
     'browser-agent', 'interrupted', '2026-10-01 10:00:00+00', '2026-10-01 10:05:00+00',
     null, 'Stopped by the operator', '{}', null,
     '2026-10-01 10:00:00+00', '2026-10-01 10:05:00+00')
on conflict (task_id) do update set
    title = excluded.title, description = excluded.description, agent = excluded.agent,
    status = excluded.status, started_at = excluded.started_at, finished_at = excluded.finished_at,
    result = excluded.result, error_message = excluded.error_message, metadata = excluded.metadata,
    owner_id = excluded.owner_id;

-- Step ids: 5eed<task digit>…<step digit>, task digit 1 login-flow, 2 checkout, 3 search, 4 old-report.
insert into public.task_steps (id, task_id, step_number, step_type, step_data, thinking, action_result,
                               screenshot_path, duration_ms, success, error_type, error_message,
                               stack_trace, started_at, metadata, created_at)
values
    -- seed-task-login-flow: 4 steps, all successful (1200 + 800 + 300 + 500 ms)
    ('5eed0001-0000-4000-8000-000000000001', 'seed-task-login-flow', 1, 'thinking',
     '{}', 'The login screen is open; tap the e-mail field first.', null,
     null, 1200, true, null, null, null, '2026-11-20 09:00:00.800+00', '{}', '2026-11-20 09:00:02+00'),
    ('5eed0001-0000-4000-8000-000000000002', 'seed-task-login-flow', 2, 'action',
     '{"action": "Type", "text": "demo@example.com", "password": "[REDACTED]"}', null, '{"ok": true}',
     null, 800, true, null, null, null, '2026-11-20 09:00:04.200+00', '{}', '2026-11-20 09:00:05+00'),
    ('5eed0001-0000-4000-8000-000000000003', 'seed-task-login-flow', 3, 'screenshot',
     '{}', null, null,
     'aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.webp',
     300, true, null, null, null, '2026-11-20 09:00:09.700+00', '{}', '2026-11-20 09:00:10+00'),
    ('5eed0001-0000-4000-8000-000000000004', 'seed-task-login-flow', 4, 'validation',
     '{"expected": "Welcome back", "found": true}', null, null,
     null, 500, true, null, null, null, '2026-11-20 09:00:19.500+00', '{}', '2026-11-20 09:00:20+00'),

    -- seed-task-checkout: 6 steps, 2 failed (1000 + 2000 + 400 + 5000 + 600 + 100 ms)
    ('5eed0002-0000-4000-8000-000000000001', 'seed-task-checkout', 1, 'thinking',
     '{}', 'Open the cart, then pay.', null,
     null, 1000, true, null, null, null, '2026-11-20 14:00:02+00', '{}', '2026-11-20 14:00:03+00'),
    ('5eed0002-0000-4000-8000-000000000002', 'seed-task-checkout', 2, 'action',
     '{"action": "Tap", "element": [540, 1200]}', null, '{"ok": true}',
     null, 2000, true, null, null, null, '2026-11-20 14:00:08+00', '{}', '2026-11-20 14:00:10+00'),
    ('5eed0002-0000-4000-8000-000000000003', 'seed-task-checkout', 3, 'screenshot',
     '{}', null, null,
     'aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.webp',
     400, true, null, null, null, '2026-11-20 14:00:14.600+00', '{}', '2026-11-20 14:00:15+00'),
    ('5eed0002-0000-4000-8000-000000000004', 'seed-task-checkout', 4, 'action',
     '{"action": "Tap", "selector": "#pay"}', null, '{"ok": false}',
     null, 5000, false, 'TimeoutError', '  Element not found: #pay  ',
     E'Traceback (most recent call last):\n  File "agent.py", line 42, in tap\nTimeoutError: Element not found: #pay',
     '2026-11-20 14:00:25+00', '{}', '2026-11-20 14:00:30+00'),
    ('5eed0002-0000-4000-8000-000000000005', 'seed-task-checkout', 5, 'screenshot',
     '{}', null, null,
     'bb/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.webp',
     600, true, null, null, null, '2026-11-20 14:00:39.400+00', '{}', '2026-11-20 14:00:40+00'),
    ('5eed0002-0000-4000-8000-000000000006', 'seed-task-checkout', 6, 'error',
     '{}', null, null,
     null, 100, false, 'TimeoutError', E'Element not found: #pay\n', null,
     '2026-11-20 14:00:49.900+00', '{}', '2026-11-20 14:00:50+00'),

    -- seed-task-search (still running): 2 steps, the second failed without a duration
    ('5eed0003-0000-4000-8000-000000000001', 'seed-task-search', 1, 'thinking',
     '{}', 'Open the flights site and search LIS.', null,
     null, 700, true, null, null, null, '2026-11-21 08:00:00.300+00', '{}', '2026-11-21 08:00:01+00'),
    ('5eed0003-0000-4000-8000-000000000002', 'seed-task-search', 2, 'action',
     '{"action": "Tap", "selector": "#pay"}', null, null,
     null, null, false, 'TimeoutError', ' Element not found: #pay', null,
     '2026-11-21 08:00:02+00', '{}', '2026-11-21 08:00:04+00'),

    -- seed-task-old-report: 4 steps, 1 failed (900 + 250 + 350 + 3000 ms)
    ('5eed0004-0000-4000-8000-000000000001', 'seed-task-old-report', 1, 'thinking',
     '{}', 'Go to Reports, pick last month.', null,
     null, 900, true, null, null, null, '2026-10-01 10:00:04.100+00', '{}', '2026-10-01 10:00:05+00'),
    ('5eed0004-0000-4000-8000-000000000002', 'seed-task-old-report', 2, 'screenshot',
     '{}', null, null,
     'aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.webp',
     250, true, null, null, null, '2026-10-01 10:00:09.750+00', '{}', '2026-10-01 10:00:10+00'),
    ('5eed0004-0000-4000-8000-000000000003', 'seed-task-old-report', 3, 'screenshot',
     '{}', null, null,
     'cc/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.webp',
     350, true, null, null, null, '2026-10-01 10:00:19.650+00', '{}', '2026-10-01 10:00:20+00'),
    ('5eed0004-0000-4000-8000-000000000004', 'seed-task-old-report', 4, 'action',
     '{"action": "Tap", "xpath": "//div["}', null, null,
     null, 3000, false, 'ValueError', 'bad selector: //div[', null,
     '2026-10-01 10:00:57+00', '{}', '2026-10-01 10:01:00+00')
on conflict (id) do update set
    task_id = excluded.task_id, step_number = excluded.step_number, step_type = excluded.step_type,
    step_data = excluded.step_data, thinking = excluded.thinking, action_result = excluded.action_result,
    screenshot_path = excluded.screenshot_path, duration_ms = excluded.duration_ms,
    success = excluded.success, error_type = excluded.error_type, error_message = excluded.error_message,
    stack_trace = excluded.stack_trace, started_at = excluded.started_at, metadata = excluded.metadata,
    created_at = excluded.created_at;

insert into public.step_screenshots (id, task_id, step_id, screenshot_path, file_size, file_hash,
                                     compressed, metadata, created_at)
values
    ('5eed5c00-0000-4000-8000-000000000001', 'seed-task-login-flow', '5eed0001-0000-4000-8000-000000000003',
     'aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.webp', 40000,
     'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', true,
     '{"width": 1080, "height": 2400, "original_format": "PNG", "original_size": 412000,
       "original_width": 1080, "original_height": 2400}', '2026-11-20 09:00:10+00'),
    ('5eed5c00-0000-4000-8000-000000000002', 'seed-task-checkout', '5eed0002-0000-4000-8000-000000000003',
     'aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.webp', 40000,
     'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', true,
     '{"width": 1080, "height": 2400, "original_format": "PNG", "original_size": 412000,
       "original_width": 1080, "original_height": 2400}', '2026-11-20 14:00:15+00'),
    ('5eed5c00-0000-4000-8000-000000000003', 'seed-task-checkout', '5eed0002-0000-4000-8000-000000000005',
     'bb/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.webp', 52000,
     'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', true,
     '{"width": 1080, "height": 2400, "original_format": "JPEG", "original_size": 380000,
       "original_width": 1080, "original_height": 2400}', '2026-11-20 14:00:40+00'),
    ('5eed5c00-0000-4000-8000-000000000004', 'seed-task-old-report', '5eed0004-0000-4000-8000-000000000002',
     'aa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.webp', 40000,
     'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', true,
     '{"width": 1080, "height": 2400, "original_format": "PNG", "original_size": 412000,
       "original_width": 1080, "original_height": 2400}', '2026-10-01 10:00:10+00'),
    ('5eed5c00-0000-4000-8000-000000000005', 'seed-task-old-report', '5eed0004-0000-4000-8000-000000000003',
     'cc/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.webp', 30000,
     'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc', true,
     '{"width": 1920, "height": 1080, "original_format": "WEBP", "original_size": 30000,
       "original_width": 1920, "original_height": 1080, "sensitive": true}', '2026-10-01 10:00:20+00')
on conflict (id) do update set
    task_id = excluded.task_id, step_id = excluded.step_id, screenshot_path = excluded.screenshot_path,
    file_size = excluded.file_size, file_hash = excluded.file_hash, compressed = excluded.compressed,
    metadata = excluded.metadata, created_at = excluded.created_at;
