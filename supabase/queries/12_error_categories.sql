-- Failed steps per error category (timeout, connection, auth, rate_limit, validation,
-- model_output, device, other; empty for steps recorded before categories existed).
select
    coalesce(error_category, '(none)') as error_category,
    failed_steps,
    tasks_affected,
    first_seen,
    last_seen
from public.error_category_summary
order by failed_steps desc, error_category nulls last;
