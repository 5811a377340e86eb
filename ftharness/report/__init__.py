"""Reports: results.json, report.html, junit.xml and the terminal tables."""
