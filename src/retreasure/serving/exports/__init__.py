"""Period files for accounting: CSV, XLSX and Parquet with a manifest."""
