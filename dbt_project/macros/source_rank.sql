{#- Source precedence for a (ticker, date) several sources carry: the user's files, then a
    market-data API's OHLCV, then the bundled OHLCV, then close-only. One place, so staging and the
    data-quality mart agree on who wins. -#}
{% macro source_rank(column) -%}
    case {{ column }}
        when 'csv' then 1
        when 'yahoo' then 2 when 'alphavantage' then 2 when 'finnhub' then 2
        when 'arch' then 3
        when 'skfolio' then 4
        else 9
    end
{%- endmacro %}
