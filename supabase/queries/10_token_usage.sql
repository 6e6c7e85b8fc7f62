-- Tokens per task, most first, with their cost at the prices of the `prices` list below
-- (per million tokens; 'default' is used for a model not listed; edit to your own prices).
-- Tokens per day: 11_daily_token_usage.sql.
with prices (model, prompt_per_million, completion_per_million) as (
    values ('default', 0.15, 0.60),
           ('autoglm-phone-9b', 0.05, 0.10)
)
select
    u.task_id,
    u.title,
    u.agent,
    u.model,
    u.started_at,
    u.steps_with_usage,
    u.prompt_tokens,
    u.completion_tokens,
    u.total_tokens,
    round((u.prompt_tokens * p.prompt_per_million + u.completion_tokens * p.completion_per_million)
          / 1e6, 6) as cost
from public.task_usage u
left join lateral (
    select x.prompt_per_million, x.completion_per_million
    from prices x
    where x.model = coalesce(u.model, 'default') or x.model = 'default'
    order by (x.model = 'default')   -- the model's own price first
    limit 1
) p on true
where u.steps_with_usage > 0
order by u.total_tokens desc, u.task_id;
