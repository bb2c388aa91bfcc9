"""Web glue shared by every page: response headers, request guards, template helpers."""
