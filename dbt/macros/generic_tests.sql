{#- Generic data tests (vendored here: no dbt hub packages offline). -#}

{#- Key columns unique as a combination, with the model's other not-null columns and row
    expression in the same scan (_macros.yml). -#}
{% test unique_combination_of_columns(model, combination_of_columns, not_null=[], expression=none) %}
    {%- set columns_csv = combination_of_columns | join(', ') %}
    {%- set checks = row_checks(not_null, expression) %}

    with

    validation as (
        select
            {{ columns_csv }},
            count(*) as n_records{{ row_check_counts(checks) }}
        from {{ model }}
        group by {{ columns_csv }}
        having count(*) > 1{{ row_check_having(checks) }}
    )

    select
        *,
        case
            when n_records > 1 then 'repeated key'{{ row_check_problems(checks) }}
        end as problem
    from validation
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
    {%- set checks = row_checks(not_null, expression) %}

    with

    validation as (
        select
            {{ column_name }} as key_value,
            count(*) as n_records{{ row_check_counts(checks) }}
        from {{ model }}
        group by {{ column_name }}
        having {{ column_name }} is null or count(*) > 1{{ row_check_having(checks) }}
    )

    select
        key_value,
        n_records,
        case
            when key_value is null then 'null key'
            when n_records > 1 then 'repeated key'{{ row_check_problems(checks) }}
        end as problem
    from validation

{% endtest %}

{#- The other checks of a key test, one (problem, condition) pair each: a column that must
    not be null, a row expression that must hold. Each is counted per key in the key's
    group-by (row_check_counts), fails the key (row_check_having) and names its problem. -#}
{% macro row_checks(not_null, expression) -%}
    {%- set checks = [] -%}
    {%- for column in not_null -%}
        {%- do checks.append(("null " ~ column, column ~ " is null")) -%}
    {%- endfor -%}
    {%- if expression is not none -%}
        {%- do checks.append(("expression false", "not coalesce((" ~ expression ~ "), false)")) -%}
    {%- endif -%}
    {{ return(checks) }}
{%- endmacro %}

{% macro row_check_counts(checks) -%}
    {%- for problem, condition in checks %},
            count(*) filter (where {{ condition }}) as failing_{{ loop.index }}
    {%- endfor -%}
{%- endmacro %}

{% macro row_check_having(checks) -%}
    {%- for problem, condition in checks %}
            or count(*) filter (where {{ condition }}) > 0
    {%- endfor -%}
{%- endmacro %}

{% macro row_check_problems(checks) -%}
    {%- for problem, condition in checks %}
            when failing_{{ loop.index }} > 0 then '{{ problem }}'
    {%- endfor -%}
{%- endmacro %}
