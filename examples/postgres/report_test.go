package postgres

// benchReport, when set by a benchmark, prints what the benchmarks of the
// run add up to, after they ran.
var benchReport func()
