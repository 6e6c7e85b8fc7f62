-- Tokens per UTC day of the step over the last 30 days (days without usage show zeros).
select
    day,
    tasks,
    steps_with_usage,
    prompt_tokens,
    completion_tokens,
    total_tokens
from public.stepsdk_daily_usage(30)
order by day desc;
