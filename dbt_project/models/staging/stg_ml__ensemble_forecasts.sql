{{ config(tags=['post_forecast']) }}

{{ stage_forecasts(source('ml', 'ensemble_forecasts'), has_train_end=false) }}
