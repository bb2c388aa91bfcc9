"""The read side shared by pages, the API and exports: filters from the query string, and the queries."""
