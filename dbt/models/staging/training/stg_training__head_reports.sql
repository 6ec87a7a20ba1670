with

source as (
    select * from {{ source('training', 'head_reports') }}
),

renamed as (
    select
        ----------  ids
        model_id,
        split_part(model_id, '@', 1) as model_name,
        split_part(model_id, '@', 2) as model_version,

        ----------  what it is
        task,
        embedder,
        split,
        labels,

        ----------  numerics
        n_train,
        n_validation,
        accuracy,
        baseline_accuracy,
        macro_f1,

        ----------  detail (JSON)
        per_class,
        confusion,
        excluded_classes,
        report_path,

        ----------  timestamps
        trained_at

    from source
)

select * from renamed
