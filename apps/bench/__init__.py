"""Benchmarks: `changzhi bench NAME --json`. Each starts what it needs, measures, stops it all,
and prints one JSON object as its last line, with the same run's peer or limit beside it."""
