"""Web glue shared by the pages and the API: reading request input safely, and turning HTTP errors into pages or JSON."""
