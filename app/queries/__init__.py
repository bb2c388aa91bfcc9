"""Read side shared by pages, the API and exports: filters from and back to the query string, and the queries
that use them, so a page, its live tail and its CSV export never disagree."""
