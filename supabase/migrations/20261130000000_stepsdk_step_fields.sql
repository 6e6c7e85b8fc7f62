-- stepsdk: three step columns the recorder fills (issues #13 and #14).
--   name            a short human label of the step ("GET /v1/forecast -> 404", "Tap", a function name)
--   usage           token usage of the model call behind the step:
--                   {"prompt_tokens", "completion_tokens", "total_tokens"} (integers >= 0)
--   error_category  a coarse class of a failed step's error, derived from the exception type,
--                   its message and the HTTP status by the recorder (stepsdk/recording/error_category.py)
-- Existing databases: additive and nullable, safe to apply on a live project.

alter table public.task_steps
    add column if not exists name text
        check (name is null or char_length(name) between 1 and 200),
    add column if not exists usage jsonb
        check (usage is null or jsonb_typeof(usage) = 'object'),
    add column if not exists error_category text
        check (error_category is null or error_category in (
            'timeout', 'connection', 'auth', 'rate_limit', 'validation', 'model_output', 'device', 'other'));

comment on column public.task_steps.name is 'Short human label of the step (HTTP method/path/status, action name, function name).';
comment on column public.task_steps.usage is 'Token usage of the step''s model call: {prompt_tokens, completion_tokens, total_tokens}.';
comment on column public.task_steps.error_category is 'Coarse error class: timeout, connection, auth, rate_limit, validation, model_output, device, other.';

create index if not exists task_steps_error_category_idx on public.task_steps (error_category)
    where error_category is not null;
