"""Bulk scoring: datasets in S3 scored on Step Functions' Distributed Map, through the data plane."""
