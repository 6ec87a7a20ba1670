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

{#- A key column: unique and never null in one scan, with the model's other not-null columns
    and row expression checked in the same scan (_macros.yml). -#}
{% test primary_key(model, column_name, not_null=[], expression=none) %}
    {%- set checks = [] -%}
    {%- for column in not_null -%}
        {%- do checks.append(("null " ~ column, column ~ " is null")) -%}
    {%- endfor -%}
    {%- if expression is not none -%}
        {%- do checks.append(("expression false", "not coalesce((" ~ expression ~ "), false)")) -%}
    {%- endif %}

    with

    validation as (
        select
            {{ column_name }} as key_value,
            count(*) as n_records
            {%- for problem, condition in checks %},
            count(*) filter (where {{ condition }}) as failing_{{ loop.index }}
            {%- endfor %}
        from {{ model }}
        group by {{ column_name }}
        having {{ column_name }} is null or count(*) > 1
            {%- for problem, condition in checks %}
            or count(*) filter (where {{ condition }}) > 0
            {%- endfor %}
    )

    select
        key_value,
        n_records,
        case
            when key_value is null then 'null key'
            when n_records > 1 then 'repeated key'
            {%- for problem, condition in checks %}
            when failing_{{ loop.index }} > 0 then '{{ problem }}'
            {%- endfor %}
        end as problem
    from validation

{% endtest %}
