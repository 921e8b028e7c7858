"""A broker under a test's control: what it holds (`inspection`), its lifecycle, clock and
faults (`controller`), and the same over HTTP for other languages (`http`)."""
