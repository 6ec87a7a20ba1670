{#- One row per camera-local date x site x category x label: independent events (by the day
    they started), MaxN, images, individuals, effort and RAI. Dense over the days a site had
    cameras deployed, for every (category, label) ever seen at the site, so a day with effort
    and no sighting is a 0 (not a missing row). trap_nights and rai are null on days with no
    effort (never 0). -#}

with

observations as (
    select * from {{ ref('int_observations_per_image') }}
),

placed as (
    select * from {{ ref('int_media_placed') }}
),

events as (
    select * from {{ ref('int_events_grouped') }}
),

effort as (
    select * from {{ ref('int_effort_aggregated_to_site_day') }}
),

placed_observations as (
    select
        observations.*,
        placed.captured_on as placed_on,
        placed.captured_at as placed_at
    from observations
    inner join placed
        on observations.media_id = placed.media_id
),

images_per_day as (
    select
        placed_on as captured_on,
        site_id,
        category,
        label,
        count(distinct media_id) as images,
        sum(individuals) as detections,
        max(individuals) as max_count_in_image,
        count(distinct camera_id) as cameras,
        min(placed_at) as first_seen_at,
        max(placed_at) as last_seen_at
    from placed_observations
    group by all
),

events_per_day as (
    select
        started_on as captured_on,
        site_id,
        category,
        label,
        count(*) as events,
        max(max_count) as max_count,
        sum(max_count) as sum_max_count
    from events
    group by all
),

labels_per_site as (
    select distinct
        site_id,
        category,
        label
    from placed_observations
),

spine as (
    select
        effort.operation_on as captured_on,
        labels_per_site.site_id,
        labels_per_site.category,
        labels_per_site.label
    from effort
    inner join labels_per_site
        on effort.site_id = labels_per_site.site_id

    union

    select captured_on, site_id, category, label from images_per_day

    union

    select captured_on, site_id, category, label from events_per_day
),

final as (
    select
        cast(spine.captured_on as date) as captured_on,
        cast(spine.site_id as varchar) as site_id,
        cast(spine.category as varchar) as category,
        cast(spine.label as varchar) as label,
        cast(coalesce(events_per_day.events, 0) as bigint) as events,
        cast(coalesce(events_per_day.max_count, 0) as bigint) as max_count,
        cast(coalesce(events_per_day.sum_max_count, 0) as bigint) as sum_max_count,
        cast(coalesce(images_per_day.images, 0) as bigint) as images,
        cast(coalesce(images_per_day.detections, 0) as bigint) as detections,
        cast(coalesce(images_per_day.max_count_in_image, 0) as bigint) as max_count_in_image,
        cast(coalesce(images_per_day.cameras, 0) as bigint) as cameras,
        cast(images_per_day.first_seen_at as timestamp) as first_seen_at,
        cast(images_per_day.last_seen_at as timestamp) as last_seen_at,
        cast(effort.trap_nights as double) as trap_nights,
        cast(
            100.0 * coalesce(events_per_day.events, 0) / effort.trap_nights as double
        ) as rai
    from spine
    left join images_per_day
        on spine.captured_on = images_per_day.captured_on
        and spine.site_id = images_per_day.site_id
        and spine.category = images_per_day.category
        and spine.label = images_per_day.label
    left join events_per_day
        on spine.captured_on = events_per_day.captured_on
        and spine.site_id = events_per_day.site_id
        and spine.category = events_per_day.category
        and spine.label = events_per_day.label
    left join effort
        on spine.captured_on = effort.operation_on
        and spine.site_id = effort.site_id
)

select * from final
