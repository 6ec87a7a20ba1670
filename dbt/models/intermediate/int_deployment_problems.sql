{#- Problem periods (camtrapR ProblemX_from / ProblemX_to) as effort windows, by camtrapR
    >= 2.1's rule: a problem given as dates runs from 00:00 of its first day (the setup time
    when that is the setup day) to the end of its last day, capped at the retrieval; given as
    date-times it is exact. Always within the deployment's effort window. -#}

with

problems as (
    select * from {{ ref('stg_pipeline__deployment_problems') }}
),

deployments as (
    select * from {{ ref('int_deployments_unioned') }}
),

windows as (
    select
        problems.deployment_id,
        problems.problem_number,
        greatest(
            case when problems.from_is_date
                then cast(cast(problems.problem_from as date) as timestamp)
                else problems.problem_from end,
            deployments.effort_start
        ) as down_from,
        least(
            case when problems.to_is_date
                then cast(cast(problems.problem_to as date) as timestamp) + interval 1 day
                else problems.problem_to end,
            deployments.effort_end
        ) as down_to
    from problems
    inner join deployments
        on problems.deployment_id = deployments.deployment_id
)

select * from windows
where down_to > down_from
