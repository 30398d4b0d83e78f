package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Progress lines reach the journal as one native-protocol message each,
// and only when the program runs with its output in the journal.
func TestJournal(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "socket")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	t.Setenv("JOURNAL_STREAM", "")
	newJournal(sock).Write([]byte("not sent\n"))

	t.Setenv("JOURNAL_STREAM", "8:1234")
	j := newJournal(sock)
	j.Write([]byte("platform ec2: asking ec2-imds user-data within 1m0s\nec2-imds user-data: attempt 1 failed"))
	j.Write([]byte(" (connection refused); retrying in 250ms\n"))
	var got []string
	buf := make([]byte, 4096)
	for range 2 {
		l.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := l.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	want := []string{
		"PRIORITY=6\nSYSLOG_IDENTIFIER=nodebake-firstboot\nMESSAGE=platform ec2: asking ec2-imds user-data within 1m0s\n",
		"PRIORITY=6\nSYSLOG_IDENTIFIER=nodebake-firstboot\nMESSAGE=ec2-imds user-data: attempt 1 failed (connection refused); retrying in 250ms\n",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages:\n%q\nwant\n%q", got, want)
	}
}
