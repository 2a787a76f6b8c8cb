package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCommands returns the mfn command lines of the ```sh blocks of a
// Markdown file, in order, with backslash continuations joined.
func docCommands(markdown string) []string {
	var cmds []string
	in := false
	var cur strings.Builder
	for _, line := range strings.Split(markdown, "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case !in && trim == "```sh":
			in = true
			continue
		case in && trim == "```":
			in = false
			continue
		case !in:
			continue
		}
		if cont, ok := strings.CutSuffix(trim, "\\"); ok {
			cur.WriteString(strings.TrimSpace(cont) + " ")
			continue
		}
		cur.WriteString(trim)
		if full := cur.String(); strings.HasPrefix(full, "mfn ") {
			cmds = append(cmds, full)
		}
		cur.Reset()
	}
	return cmds
}

// shellWords splits a command line on blanks, honouring '…' and "…"
// quotes (enough for documentation examples; no escapes or expansions).
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	var quote rune
	inWord := false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

func TestDocCommandsParser(t *testing.T) {
	md := "text\n```sh\nmfn a --x 1 \\\n    --y 'b c'\nls\n# comment\n```\n```text\nmfn not this\n```\n```sh\nmfn z\n```\n"
	got := docCommands(md)
	if len(got) != 2 || got[0] != "mfn a --x 1 --y 'b c'" || got[1] != "mfn z" {
		t.Fatalf("commands %q", got)
	}
	if w := shellWords(got[0]); len(w) != 6 || w[5] != "b c" {
		t.Fatalf("words %q", w)
	}
}

// TestExploreDocCommands runs every mfn command of docs/EXPLORE.md in
// order in an empty folder: each must succeed, so the walkthrough cannot
// drift from the program. It also checks that every figure the page shows
// is committed under docs/explore, and that they stay small.
func TestExploreDocCommands(t *testing.T) {
	doc, err := filepath.Abs(filepath.Join("..", "..", "docs", "EXPLORE.md"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	cmds := docCommands(string(b))
	if len(cmds) < 5 {
		t.Fatalf("found %d mfn commands in EXPLORE.md, expected the walkthrough's", len(cmds))
	}
	// Figures shown on the page exist; all of them weigh less than 1 MB.
	figs := regexp.MustCompile(`\]\((explore/[^)]+\.png)\)`).FindAllStringSubmatch(string(b), -1)
	var total int64
	for _, m := range figs {
		st, err := os.Stat(filepath.Join(filepath.Dir(doc), m[1]))
		if err != nil {
			t.Errorf("figure %s: %v", m[1], err)
			continue
		}
		total += st.Size()
	}
	if len(figs) == 0 || total >= 1<<20 {
		t.Errorf("%d figures of %d bytes in total; want some, under 1 MiB", len(figs), total)
	}
	t.Chdir(t.TempDir())
	for _, c := range cmds {
		args := shellWords(c)[1:]
		code, stdout, stderr := runDatasetCLI(t, context.Background(), args...)
		if code != 0 {
			t.Fatalf("%s\nexit %d\nstdout:\n%s\nstderr:\n%s", c, code, stdout, stderr)
		}
		t.Logf("%s: ok", c)
	}
	// The walkthrough's outputs are where the page says.
	for _, f := range []string{"figs/fractal_boxes.png", "figs-30/fractal_boxes.png", "figs/features_importance.png", "fractal.json", "features.json"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the walkthrough did not produce %s: %v", f, err)
		}
	}
}
