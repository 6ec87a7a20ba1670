{#- Generic data tests (vendored here: no dbt hub packages offline). -#}

{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set columns_csv = combination_of_columns | join(', ') %}

    with

    validation as (
        select
            {{ columns_csv }},
            count(*) as n_records
        from {{ model }}
        group by {{ columns_csv }}
        having count(*) > 1
    )

    select * from validation
{% endtest %}

{% test expression_is_true(model, expression, column_name=none) %}

    with

    validation as (
        select *
        from {{ model }}
        where not coalesce(({{ expression }}), false)
    )

    select * from validation
{% endtest %}

{#- A key column: unique and never null in one scan (_macros.yml). -#}
{% test primary_key(model, column_name) %}

    with

    validation as (
        select
            {{ column_name }} as key_value,
            count(*) as n_records
        from {{ model }}
        group by {{ column_name }}
        having {{ column_name }} is null or count(*) > 1
    )

    select
        key_value,
        n_records,
        case when key_value is null then 'null key' else 'repeated key' end as problem
    from validation

{% endtest %}
