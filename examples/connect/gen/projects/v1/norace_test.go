//go:build !race

package projectsv1_test

// raceEnabled reports whether the test runs under the race detector, so
// that the plugins are built with it too and share its compiled packages.
const raceEnabled = false
