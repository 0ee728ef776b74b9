"""Carrying out renders: executors (this process, Dask), the GeoTIFF writer, resume journals."""
