// Command stdioproxy connects its standard input and output to a TCP
// address: QEMU's user network runs it once per guest connection for a
// guestfwd=...-cmd: forward (a guestfwd to a tcp: chardev connects once,
// when QEMU starts, and carries a single connection).
//
//	stdioproxy HOST:PORT
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: stdioproxy HOST:PORT")
		os.Exit(2)
	}
	conn, err := net.DialTimeout("tcp", os.Args[1], 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stdioproxy:", err)
		os.Exit(1)
	}
	tcp := conn.(*net.TCPConn)
	done := make(chan struct{})
	go func() {
		io.Copy(tcp, os.Stdin)
		tcp.CloseWrite()
	}()
	go func() {
		io.Copy(os.Stdout, tcp)
		close(done)
	}()
	<-done
	tcp.Close()
}
