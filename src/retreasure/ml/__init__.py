"""Machine learning over gold: demand forecasts and recommendations trained on what the business did, scored
back into gold for serving; every training run recorded."""
