package probe

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestArgsSplit(t *testing.T) {
	for _, steps := range [][][]string{
		{{"report", "/run/nodebake/status.json"}},
		{{"report", "/a"}, {"write", "/b", "text with spaces"}, {"fetch", "http://10.200.1.3/"}},
	} {
		args := Args(steps...)
		if got := Split(args); !cmp.Equal(steps, got) {
			t.Errorf("Split(Args(%q)) = %q", steps, got)
		}
	}
	if got := Split([]string{"fetch", "u", "--", "--", "report", "f"}); len(got) != 3 || len(got[1]) != 0 {
		t.Errorf("an empty step between separators: %q", got)
	}
}

func TestMessage(t *testing.T) {
	steps := []Step{{Step: "report /a", OK: true, Result: `{"ok": true}`}, {Step: "fetch http://x/", Error: "refused", Millis: 60123, Attempts: 12}}
	b, err := Message(steps)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(string(b))
	if err != nil || !cmp.Equal(steps, got) {
		t.Errorf("Parse(Message(steps)) = %v, %v", got, err)
	}
	if _, err := Message([]Step{{Result: strings.Repeat("x", MaxMessage)}}); err == nil {
		t.Error("a message longer than a termination message was accepted")
	}
	for _, bad := range []string{"", "web: usage", "{}", strings.Repeat("[", MaxMessage+1)} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%.20q) accepted", bad)
		}
	}
}
