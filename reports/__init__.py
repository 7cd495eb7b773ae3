"""Reports for people: the monthly HTML pages with SVG charts, CSV files and text summaries."""
