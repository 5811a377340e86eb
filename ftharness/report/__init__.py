"""Reports: results.json, report.html, junit.xml, and the run folder that holds them."""
