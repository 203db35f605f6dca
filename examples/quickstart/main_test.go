package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"page 3", // five acme logs, two a page
		"app.project.deleted  project:p-1  denied", // the denial is listed
		"api_key=[REDACTED]",                       // secrets never reach the trail
		"audit: invalid filter: limit is 1001",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "sk_live") {
		t.Errorf("a secret reached the output:\n%s", got)
	}
	acme, _, _ := strings.Cut(got, "Denied")
	if strings.Contains(acme, "page 4") || strings.Contains(acme, "globex") {
		t.Errorf("acme's pages hold another org's logs or too many pages:\n%s", acme)
	}
}
