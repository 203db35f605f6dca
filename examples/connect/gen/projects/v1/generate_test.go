package projectsv1_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsCurrent regenerates the code of proto/ into a
// temporary directory, with the pinned tools of generate.sh, and fails
// when any file differs from the one checked in under gen/, or one is
// missing or left over: the .proto was changed without running
// `make generate-connect`, or the generated code was edited by hand.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Fatal("protoc is not installed: run 'make protoc' at the repository's root (Debian's protobuf-compiler and libprotobuf-dev), as 'make test' does")
	}
	root, err := filepath.Abs("../../..") // the module's root
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "generate.sh"), out)
	cmd.Dir = root
	if raceEnabled {
		cmd.Env = append(os.Environ(), "GENERATE_GOFLAGS=-race")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, b)
	}
	want := generated(t, out)
	got := generated(t, filepath.Join(root, "gen"))
	if len(want) == 0 {
		t.Fatal("generate.sh generated nothing")
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("gen/%s is missing: run 'make generate-connect'", name)
		case !bytes.Equal(g, w):
			t.Errorf("gen/%s is stale or was edited: run 'make generate-connect'", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("gen/%s is generated from no .proto: delete it", name)
		}
	}
}

// generated returns the generated files under dir, by path relative to it.
func generated(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.go") && !strings.HasSuffix(path, ".connect.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
