"""Web glue shared by the pages and the API: reading request input safely, security headers, and turning
HTTP errors into pages or JSON."""
