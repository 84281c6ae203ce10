{#- Simple return from the close of the current session to the close h sessions later. -#}
{% macro fwd_return(price, h) -%}
    lead({{ price }}, {{ h }}) over (partition by ticker order by date) / {{ price }} - 1
{%- endmacro %}
