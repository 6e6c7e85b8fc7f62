-- Screenshot storage: how many rows and distinct objects, the bytes they take, what
-- content addressing saves (one object shared by identical screenshots), and what the
-- bucket itself holds (objects uploaded but referenced by no row are orphans).
with rows_ as (
    select screenshot_path, file_size from public.step_screenshots
),
objects_ as (
    -- one size per object: identical bytes give the identical content-addressed path
    select screenshot_path, max(file_size) as file_size from rows_ group by screenshot_path
),
bucket as (
    select o.name, coalesce((o.metadata ->> 'size')::bigint, 0) as size
    from storage.objects o
    where o.bucket_id = 'step-screenshots'
)
select
    (select count(*) from rows_)                                         as screenshot_rows,
    (select count(*) from objects_)                                      as distinct_objects,
    (select coalesce(sum(file_size), 0) from rows_)                      as bytes_if_not_shared,
    (select coalesce(sum(file_size), 0) from objects_)                   as bytes_referenced,
    (select coalesce(sum(file_size), 0) from rows_)
        - (select coalesce(sum(file_size), 0) from objects_)             as bytes_saved_by_sharing,
    (select count(*) from bucket)                                        as bucket_objects,
    (select coalesce(sum(size), 0) from bucket)                          as bucket_bytes,
    (select count(*) from bucket b
      where not exists (select 1 from objects_ r where r.screenshot_path = b.name)) as orphan_bucket_objects,
    (select count(*) from objects_ r
      where not exists (select 1 from bucket b where b.name = r.screenshot_path))   as rows_without_object;
