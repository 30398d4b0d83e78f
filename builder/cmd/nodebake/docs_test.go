package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docCommand is a nodebake command line written in the documentation.
type docCommand struct {
	file string
	line int
	text string
}

// docCommands returns the nodebake command lines of a Markdown file: the
// lines of its code blocks (joined across backslash continuations) and
// its inline code spans.
func docCommands(file string, b []byte) []docCommand {
	var out []docCommand
	inBlock := false
	var cont strings.Builder
	contLine := 0
	span := regexp.MustCompile("`([^`]+)`")
	for i, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			if cont.Len() == 0 {
				contLine = i + 1
			}
			if s, ok := strings.CutSuffix(l, "\\"); ok {
				cont.WriteString(s + " ")
				continue
			}
			cont.WriteString(l)
			out = append(out, docCommand{file, contLine, cont.String()})
			cont.Reset()
			continue
		}
		for _, m := range span.FindAllStringSubmatch(l, -1) {
			out = append(out, docCommand{file, i + 1, m[1]})
		}
	}
	return out
}

// invocation finds "nodebake ARGS" in a line and returns ARGS up to a
// comment or the end of the command.
var invocation = regexp.MustCompile(`(?:^|[\s/(])nodebake\s+([a-z][^#|;&)]*)`)

// TestDocsUseRealFlags: every flag the README and docs/ give a nodebake
// command is one the command has, so the docs and the help agree.
func TestDocsUseRealFlags(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"), filepath.Join(root, "layers", "firstboot", "README.md"), filepath.Join(root, "images", "base", "README.md"))
	cli := newRootCmd(&env{stdout: &strings.Builder{}, stderr: &strings.Builder{}})
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, dc := range docCommands(f, b) {
			for _, m := range invocation.FindAllStringSubmatch(dc.text, -1) {
				args := strings.Fields(m[1])
				cmd, rest, err := cli.Find(args)
				if err != nil || cmd == cli || len(rest) == len(args) {
					continue // prose ("nodebake bakes ..."), not a command
				}
				cmd.InitDefaultHelpFlag()
				for _, a := range args {
					if !strings.HasPrefix(a, "-") || a == "-" || a == "--" || strings.HasPrefix(a, "-...") {
						continue
					}
					name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
					name = strings.TrimRight(name, ".,:`'\"")
					var found bool
					if strings.HasPrefix(a, "--") || len(name) > 1 {
						found = cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil
					} else {
						found = cmd.Flags().ShorthandLookup(name) != nil
					}
					if !found {
						rel, _ := filepath.Rel(root, dc.file)
						t.Errorf("%s:%d: %q: %s has no flag %s", rel, dc.line, strings.TrimSpace(m[0]), cmd.CommandPath(), a)
					}
					checked++
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d flags found in the docs: the extraction is broken", checked)
	}
}
